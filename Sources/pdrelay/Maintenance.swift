import ArgumentParser
import Foundation
import RelayCore

/// `pdrelay maintenance`: start, list, change and end maintenance windows on a running relay.
struct Maintenance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start, list and end maintenance windows: events for the routing keys or sources named are accepted but not delivered.",
        subcommands: [Start.self, List.self, Extend.self, End.self])
}

extension Maintenance {
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a maintenance window (now, or at --start).",
            discussion:
                "Name the routing keys (--routing-key, repeatable) or a --source-pattern such as 'db-*', or both. Acknowledges and resolves of incidents opened before the window still go through."
        )
        @OptionGroup var relay: RelayOptions
        @Option(name: .customLong("routing-key"), help: "A routing key the window covers (the full key); repeatable.") var routingKeys:
            [String] = []
        @Option(help: "A source pattern the window covers: * and ? as in a shell.") var sourcePattern: String?
        @Option(help: "Why: shown to whoever looks next.") var reason: String
        @Option(help: "How long, in minutes.") var minutes: Int?
        @Option(help: "When it ends instead, RFC 3339 (2026-12-04T23:00:00Z).") var end: String?
        @Option(help: "When it starts, RFC 3339 (default: now).") var start: String?
        @Flag(help: "Hold the events instead, and deliver them after the window, in order.") var hold = false

        func validate() throws {
            guard (minutes == nil) != (end == nil) else { throw ValidationError("give either --minutes or --end") }
        }

        func run() async throws {
            var object: [String: JSONValue] = ["reason": .string(reason), "hold": .bool(hold)]
            if !routingKeys.isEmpty { object["routing_keys"] = .array(routingKeys.map(JSONValue.string)) }
            if let sourcePattern { object["source_pattern"] = .string(sourcePattern) }
            if let minutes { object["duration_minutes"] = .integer(Int64(minutes)) }
            if let end { object["end"] = .string(end) }
            if let start { object["start"] = .string(start) }
            let window = try await relay.call(MaintenanceWindowView.self) {
                try await $0.post("/v1/maintenance-windows", json: JSONValue.object(object).encoded())
            }
            if relay.json { return }
            print(
                "maintenance window \(window.id) \(window.state.rawValue): \(window.start) until \(window.end)\(window.hold ? ", holding events" : "")"
            )
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List maintenance windows (ended ones for a day after).")
        @OptionGroup var relay: RelayOptions

        func run() async throws {
            let list = try await relay.call(MaintenanceWindowList.self) { try await $0.get("/v1/maintenance-windows") }
            if relay.json { return }
            guard !list.windows.isEmpty else { return print("no maintenance windows") }
            print(
                Table.render(
                    ["ID", "STATE", "START", "END", "ROUTING KEYS", "SOURCES", "HOLD", "SUPPRESSED", "HOLDING", "REASON"],
                    list.windows.map {
                        [
                            "\($0.id)", $0.state.rawValue, $0.start, $0.end,
                            $0.routingKeys.isEmpty ? "any" : $0.routingKeys.joined(separator: ","),
                            $0.sourcePattern ?? "any", $0.hold ? "yes" : "no", "\($0.suppressed)", "\($0.holding)",
                            String($0.reason.prefix(60)),
                        ]
                    }))
        }
    }

    struct Extend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a window's end (earlier or later).")
        @OptionGroup var relay: RelayOptions
        @Argument(help: "The window's id, as `list` shows it.") var id: UInt64
        @Option(help: "The new end, RFC 3339.") var end: String

        func run() async throws {
            let body = JSONValue.object(["end": .string(end)]).encoded()
            let window = try await relay.call(MaintenanceWindowView.self) {
                try await $0.patch("/v1/maintenance-windows/\(id)", json: body)
            }
            if relay.json { return }
            print("maintenance window \(window.id) now ends \(window.end)")
        }
    }

    struct End: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a window now; what it held is delivered.")
        @OptionGroup var relay: RelayOptions
        @Argument(help: "The window's id, as `list` shows it.") var id: UInt64

        func run() async throws {
            let ended = try await relay.call(MaintenanceWindowEnded.self) { try await $0.delete("/v1/maintenance-windows/\(id)") }
            if relay.json { return }
            print("maintenance window \(ended.window.id) ended; \(ended.released) held event(s) released for delivery")
        }
    }
}
