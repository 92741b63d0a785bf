import ArgumentParser
import Foundation
import RelayClient

/// pdagent's `pd-send`, pointed at a relay: the same flags, the same output, plus the Events
/// API v2 fields. It sends straight to the relay, which makes the event durable before it
/// answers, so there is no local spool to lose.
@main
struct PDSend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pd-send",
        abstract: "Send a PagerDuty event through a pdrelay node.",
        discussion: "Exit status: 0 when the relay accepted the event, 1 when it was refused or could not be sent.")

    @Option(name: [.customShort("k"), .customLong("service-key"), .customLong("routing-key")], help: "Integration (routing) key.")
    var serviceKey: String

    @Option(name: [.customShort("t"), .customLong("event-type")], help: "trigger, acknowledge or resolve.")
    var type: String

    @Option(name: [.customShort("d"), .customLong("description")], help: "Summary of the event (required to trigger).")
    var description: String?

    @Option(
        name: [.customShort("i"), .customLong("incident-key"), .customLong("dedup-key")],
        help: "Dedup key (required to acknowledge or resolve).")
    var incidentKey: String?

    @Option(name: [.customShort("c"), .customLong("client")], help: "Name of the monitoring client.")
    var client: String?

    @Option(name: [.customShort("u"), .customLong("client-url")], help: "URL of the monitoring client.")
    var clientURL: String?

    @Option(name: [.customShort("f"), .customLong("field")], help: "Custom detail KEY=VALUE; repeatable.")
    var field: [String] = []

    @Flag(name: [.customShort("q"), .long], help: "Print nothing on success.")
    var quiet = false

    @Option(help: "critical, error, warning or info.") var severity = "error"
    @Option(help: "The affected system; defaults to this host's name.") var source: String?
    @Option(help: "Component of the source.") var component: String?
    @Option(help: "Logical group of components.") var group: String?
    @Option(name: .customLong("class"), help: "Class or type of the event.") var eventClass: String?

    @Option(help: "The relay's base URL.") var url = "http://127.0.0.1:8081"
    @Option(help: "Retries after a 429, a 5xx or a connection error.") var retries = 2
    @Option(help: "Timeout per request, in milliseconds.") var timeoutMilliseconds: Int64 = 10_000

    func validate() throws {
        guard ["trigger", "acknowledge", "resolve"].contains(type) else {
            throw ValidationError("-t/--event-type must be trigger, acknowledge or resolve")
        }
        if type == "trigger" && (description ?? "").isEmpty { throw ValidationError("-d/--description is required to trigger") }
        if type != "trigger" && (incidentKey ?? "").isEmpty { throw ValidationError("-i/--incident-key is required to \(type)") }
        for item in field where !item.contains("=") { throw ValidationError("-f/--field takes KEY=VALUE, not '\(item)'") }
        guard (0...10).contains(retries) else { throw ValidationError("--retries must be between 0 and 10") }
    }

    func run() async throws {
        let body = try JSONSerialization.data(withJSONObject: event(), options: [.sortedKeys])
        let response = try await RelayClient.with(baseURL: url, timeoutMilliseconds: timeoutMilliseconds) { client in
            try await send(Array(body), with: client)
        }
        guard (200..<300).contains(response.status), let key = response.json?["dedup_key"] as? String else {
            FileHandle.standardError.write(
                Data("pd-send: the event was not accepted (HTTP \(response.status)): \(response.errorText)\n".utf8))
            throw ExitCode.failure
        }
        if !quiet { print("Event processed. Incident Key: \(key)") }
    }

    private func send(_ body: [UInt8], with client: RelayClient) async throws -> RelayResponse {
        var attempt = 0
        while true {
            do {
                let response = try await client.post("/v2/enqueue", json: body)
                let retryable = response.status == 429 || response.status >= 500
                guard retryable, attempt < retries else { return response }
                try await Task.sleep(for: .seconds(min(Int(response.retryAfter ?? "") ?? 1, 30)))
            } catch {
                guard attempt < retries else {
                    FileHandle.standardError.write(Data("pd-send: cannot reach the relay at \(url): \(error)\n".utf8))
                    throw ExitCode.failure
                }
                try await Task.sleep(for: .seconds(1))
            }
            attempt += 1
        }
    }

    private func event() -> [String: Any] {
        var event: [String: Any] = ["routing_key": serviceKey, "event_action": type]
        if let incidentKey { event["dedup_key"] = incidentKey }
        if let client { event["client"] = client }
        if let clientURL { event["client_url"] = clientURL }
        var payload: [String: Any] = [
            "summary": description ?? "\(type) \(incidentKey ?? "")", "severity": severity,
            "source": source ?? ProcessInfo.processInfo.hostName,
        ]
        if let component { payload["component"] = component }
        if let group { payload["group"] = group }
        if let eventClass { payload["class"] = eventClass }
        if !field.isEmpty {
            payload["custom_details"] = Dictionary(
                field.map { item in
                    let parts = item.split(separator: "=", maxSplits: 1)
                    return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
                }, uniquingKeysWith: { _, last in last })
        }
        event["payload"] = payload
        return event
    }
}
