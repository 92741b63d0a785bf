import EngineCore
import RelayCore

/// The one way an event enters the queue, whether a client posted it or a gateway built it
/// from a syslog line or a trap: validated as PagerDuty would, given a dedup_key by template
/// when it has none, and taken only once the store (of a majority, in a cluster) holds it.
struct EventIntake: Sendable {
    enum Outcome: Sendable {
        /// Durable: `outcome` says what became of it (`queued`, `duplicate`, `held`…).
        case taken(outcome: String, dedupKey: String)
        case invalid(IngestError)
        /// Refused: the queue holds its limit. The routing key is for the log, masked.
        case queueFull(routingKey: String)
        case unavailable(EngineError)
    }

    let commands: CommandRouter
    let environment: NodeEnvironment
    let limits: ValidationLimits
    let dedupKeyTemplates: DedupKeyTemplates

    func take(_ body: [UInt8], api: IngestAPI, receivedAtMilliseconds: Int64) async -> Outcome {
        let event: ValidatedEvent
        switch EventValidator.validate(body: body, api: api, limits: limits) {
        case .success(let validated): event = validated
        case .failure(let error): return .invalid(error)
        }
        let acceptance = Acceptance(
            event, templates: dedupKeyTemplates, assignedKey: environment.newKey(),
            receivedAtMilliseconds: environment.wallClockMilliseconds())
        let result: CommandResult
        do {
            result = try await commands.submit(.accept(acceptance), receivedAtMilliseconds: receivedAtMilliseconds)
        } catch {
            return .unavailable(error)
        }
        switch result {
        case .accepted(let dedupKey, _): return .taken(outcome: "queued", dedupKey: dedupKey)
        case .duplicate(let dedupKey, _): return .taken(outcome: "duplicate", dedupKey: dedupKey)
        case .coalesced(let dedupKey, _): return .taken(outcome: "coalesced", dedupKey: dedupKey)
        case .repeatSuppressed(let dedupKey): return .taken(outcome: "repeat_suppressed", dedupKey: dedupKey)
        case .suppressedByMaintenance(let dedupKey, _): return .taken(outcome: "maintenance_suppressed", dedupKey: dedupKey)
        case .held(let dedupKey, _): return .taken(outcome: "held", dedupKey: dedupKey)
        case .digested(let dedupKey): return .taken(outcome: "digested", dedupKey: dedupKey)
        case .queueFull: return .queueFull(routingKey: event.routingKey)
        default: preconditionFailure("accept returned \(result)")
        }
    }
}
