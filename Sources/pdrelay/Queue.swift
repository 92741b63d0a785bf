import ArgumentParser
import Foundation
import RelayClient
import RelayCore

/// pdagent's `pd-queue`, for a relay: look at what is queued or dead, retry dead letters, purge.
struct Queue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and manage a relay's queue.",
        subcommands: [Status.self, List.self, Show.self, Retry.self, Purge.self])
}

/// Where the relay is and how to talk to it; shared by every `queue` and `maintenance` subcommand.
struct RelayOptions: ParsableArguments {
    @Option(help: "The relay's base URL.") var url = "http://127.0.0.1:8081"
    @Option(help: "The relay's admin_token (default: $PDRELAY_ADMIN_TOKEN).") var adminToken: String?
    @Flag(help: "Print the relay's JSON answer.") var json = false

    /// Calls the relay and decodes its answer, or exits 1 with the relay's own error text.
    func call<T: Decodable>(_ type: T.Type, _ request: (RelayClient) async throws -> RelayResponse) async throws -> T {
        let response: RelayResponse
        do {
            response = try await RelayClient.with(
                baseURL: url, adminToken: adminToken ?? ProcessInfo.processInfo.environment["PDRELAY_ADMIN_TOKEN"]
            ) { try await request($0) }
        } catch {
            fail("cannot reach the relay at \(url): \(error)")
        }
        guard (200..<300).contains(response.status) else { fail("the relay answered HTTP \(response.status): \(response.errorText)") }
        if json { print(response.text) }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(T.self, from: Data(response.body))
        } catch {
            fail("unexpected answer from the relay: \(error)")
        }
    }

    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("pdrelay: \(message)\n".utf8))
        Foundation.exit(1)
    }
}

/// Which events a command acts on.
struct SelectionOptions: ParsableArguments {
    @Option(help: "Only events for this routing key (the full key).") var routingKey: String?
    @Option(help: "Only events with this dedup key.") var dedupKey: String?
    @Option(name: .customLong("event"), help: "Only the event with this number.") var eventNumber: UInt64?

    var isEmpty: Bool { routingKey == nil && dedupKey == nil && eventNumber == nil }

    func filter(states: Set<QueuedEvent.State>) -> EventFilter {
        EventFilter(routingKey: routingKey, dedupKey: dedupKey, eventNumber: eventNumber, states: states)
    }
}

extension Queue {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts of queued events per state and per routing key.")
        @OptionGroup var relay: RelayOptions

        func run() async throws {
            let status = try await relay.call(QueueStatus.self) { try await $0.get("/v1/queue/status") }
            if relay.json { return }
            print("pending: \(status.pending)  dead: \(status.dead)  in flight: \(status.inFlight)  (limit \(status.maxQueuedEvents))")
            print("dedup keys remembered: \(status.dedupKeys)")
            guard !status.routingKeys.isEmpty else { return }
            print(
                Table.render(
                    ["ROUTING KEY", "PENDING", "DEAD", "WAITING FOR SLOT", "SLOT MS"],
                    status.routingKeys.map {
                        [
                            $0.routingKey, "\($0.pending)", "\($0.dead)", $0.waitingForSlot.map(String.init) ?? "-",
                            $0.slotMilliseconds.map(String.init) ?? "-",
                        ]
                    }))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List queued events, oldest first.")
        @OptionGroup var relay: RelayOptions
        @Option(help: "pending or dead (default: both).") var state: QueuedEvent.State?
        @Option(help: "Only events for this routing key (the full key).") var routingKey: String?
        @Option(help: "Only events with this dedup key.") var dedupKey: String?
        @Option(help: "At most this many events.") var limit = 100

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let state { query.append("state=\(state.rawValue)") }
            if let routingKey { query.append("routing_key=\(routingKey.urlQueryEncoded)") }
            if let dedupKey { query.append("dedup_key=\(dedupKey.urlQueryEncoded)") }
            let events = try await relay.call([EventSummary].self) { try await $0.get("/v1/queue/events?" + query.joined(separator: "&")) }
            if relay.json { return }
            guard !events.isEmpty else { return print("no events") }
            print(
                Table.render(
                    ["EVENT", "STATE", "ACTION", "ROUTING KEY", "DEDUP KEY", "ATTEMPTS", "RECEIVED", "LAST ERROR"],
                    events.map {
                        [
                            "\($0.number)", $0.state.rawValue, $0.action.rawValue, $0.routingKey, $0.dedupKey, "\($0.attempts)",
                            Table.time($0.receivedAtMilliseconds), String(($0.lastError ?? "").prefix(60)),
                        ]
                    }))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One event, its body and its attempt history.")
        @OptionGroup var relay: RelayOptions
        @Argument(help: "The event number, as `list` shows it.") var number: UInt64

        func run() async throws {
            let detail = try await relay.call(EventDetail.self) { try await $0.get("/v1/queue/events/\(number)") }
            if relay.json { return }
            let event = detail.event
            print("event \(event.number): \(event.kind.rawValue) \(event.action.rawValue), \(event.state.rawValue)")
            print("routing key: \(event.routingKey)  dedup key: \(event.dedupKey)")
            print("received: \(Table.time(event.receivedAtMilliseconds))  attempts: \(event.attempts)")
            if let lastError = event.lastError { print("last error: \(lastError)") }
            if let body = detail.body { print("body: \(String(decoding: body.encoded(), as: UTF8.self))") }
            guard !detail.attempts.isEmpty else { return print("no attempts yet") }
            print(
                Table.render(
                    ["WHEN", "OUTCOME", "STATUS", "MS", "DETAIL"],
                    detail.attempts.map {
                        [
                            Table.time($0.atMilliseconds), $0.outcome.rawValue, $0.statusCode.map(String.init) ?? "-",
                            "\($0.durationMilliseconds)", String($0.detail.prefix(100)),
                        ]
                    }))
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move dead events back to pending.",
            discussion:
                "A dead event is not retried if a later event for its key was accepted since: sending it now could re-open a resolved incident."
        )
        @OptionGroup var relay: RelayOptions
        @OptionGroup var selection: SelectionOptions
        @Flag(help: "Retry every dead event.") var all = false

        func validate() throws {
            guard all != !selection.isEmpty else {
                throw ValidationError("name events with --routing-key, --dedup-key or --event, or say --all")
            }
        }

        func run() async throws {
            let body = try JSONEncoder().encode(selection.filter(states: [.dead]))
            let outcome = try await relay.call(QueueCommandOutcome.self) { try await $0.post("/v1/queue/retry", json: Array(body)) }
            if relay.json { return }
            print(
                "retried \(outcome.retried ?? 0) dead event(s); \(outcome.superseded ?? 0) left dead because a later event for their key was accepted"
            )
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete queued events for good. Needs --yes.")
        @OptionGroup var relay: RelayOptions
        @OptionGroup var selection: SelectionOptions
        @Option(help: "pending or dead (default: both).") var state: QueuedEvent.State?
        @Flag(help: "Purge every event in the chosen state(s).") var all = false
        @Flag(help: "Really delete.") var yes = false

        func validate() throws {
            guard all != !selection.isEmpty else {
                throw ValidationError("name events with --routing-key, --dedup-key or --event, or say --all")
            }
            guard yes else { throw ValidationError("purge deletes events that will never reach PagerDuty; add --yes to do it") }
        }

        func run() async throws {
            let states = state.map { Set([$0]) } ?? Set(QueuedEvent.State.allCases)
            let body = try JSONEncoder().encode(selection.filter(states: states))
            let outcome = try await relay.call(QueueCommandOutcome.self) { try await $0.post("/v1/queue/purge", json: Array(body)) }
            if relay.json { return }
            print("purged \(outcome.purged ?? 0) event(s)")
        }
    }
}

extension QueuedEvent.State: ExpressibleByArgument {}

/// Plain aligned columns, for a terminal at 3 a.m.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    static func time(_ milliseconds: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1_000))
    }
}

extension String {
    var urlQueryEncoded: String { addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? self }
}
