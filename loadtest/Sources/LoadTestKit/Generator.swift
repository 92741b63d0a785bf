import Foundation
import NIOCore

/// One event the generator sent, as the audit and the report need it. Times are nanoseconds
/// after the run's start on the monotonic clock.
public struct SentEvent: Sendable, Equatable {
    public var incident: Int32
    public var sequence: Int32
    /// Index into `ActionMix.actions`.
    public var action: UInt8
    /// The HTTP status, or 0 when no answer came (refused, reset, timed out).
    public var status: Int16
    /// When the event was due: its send time in a closed loop, its slot in an open loop.
    public var dueNanoseconds: Int64
    public var answeredNanoseconds: Int64

    public init(incident: Int32, sequence: Int32, action: UInt8, status: Int16, dueNanoseconds: Int64, answeredNanoseconds: Int64) {
        self.incident = incident
        self.sequence = sequence
        self.action = action
        self.status = status
        self.dueNanoseconds = dueNanoseconds
        self.answeredNanoseconds = answeredNanoseconds
    }

    public var accepted: Bool { status == 202 }
    public var latencyNanoseconds: Int64 { answeredNanoseconds - dueNanoseconds }
}

/// Drives a workload against one URL over keep-alive connections, one task per connection.
public struct Generator: Sendable {
    public let workload: Workload
    public let host: String
    public let port: Int
    public let path: String

    public init(url: String, path: String = "/v2/enqueue", workload: Workload) throws {
        guard let components = URLComponents(string: url), let host = components.host, let port = components.port else {
            throw LoadTestError("cannot read host and port from \(url)")
        }
        guard Self.isLoopback(host) else {
            throw LoadTestError("the generator sends to loopback addresses only (127.0.0.0/8, localhost, ::1), not \(host)")
        }
        self.host = host
        self.port = port
        self.path = path
        self.workload = workload
    }

    /// Loads on this machine stay on this machine.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// Runs until the workload's time or count is used up, and returns every event sent.
    /// `start` is the instant the times count from (shared with the upstream's records).
    public func run(start: ContinuousClock.Instant) async -> [SentEvent] {
        let workload = self.workload
        let factory = EventFactory(runID: workload.runID, routingKeys: workload.routingKeys)
        let durationNanoseconds = Int64(workload.durationSeconds * 1e9)
        return await withTaskGroup(of: [SentEvent].self) { group in
            for connection in 0..<workload.connections {
                group.addTask {
                    var schedule = EventSchedule(connection: connection, workload: workload)
                    var sent: [SentEvent] = []
                    let link = LoadConnection(
                        host: host, port: port, path: path,
                        requestTimeout: .milliseconds(Int64(workload.requestTimeoutSeconds * 1_000)))
                    await link.run {
                        let index = schedule.sent
                        guard let event = schedule.next() else { return nil }
                        let due: Int64
                        switch workload.pacing {
                        case .closedLoop:
                            due = (ContinuousClock.now - start).nanoseconds
                        case .openLoop(let rate):
                            due = schedule.dueNanoseconds(index: index, eventsPerSecond: rate)
                            let wait = due - (ContinuousClock.now - start).nanoseconds
                            if wait > 0 { try? await Task.sleep(for: .nanoseconds(wait)) }
                        }
                        guard due < durationNanoseconds else { return nil }
                        let body = factory.body(
                            incident: event.incident, sequence: event.sequence, action: event.action, bytes: event.bytes)
                        return LoadConnection.Exchange(body: body) { status in
                            sent.append(
                                SentEvent(
                                    incident: Int32(event.incident), sequence: Int32(event.sequence), action: event.action,
                                    status: Int16(clamping: status), dueNanoseconds: due,
                                    answeredNanoseconds: (ContinuousClock.now - start).nanoseconds))
                        }
                    }
                    return sent
                }
            }
            var all: [SentEvent] = []
            for await part in group { all += part }
            return all
        }
    }
}

extension Duration {
    public var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
