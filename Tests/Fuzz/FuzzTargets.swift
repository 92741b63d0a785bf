import ClusterCore
import Foundation
import GatewayCore
import RelayCore
import RelayReplication

/// The gateways' parsers and the peer stream's decoder under libFuzzer, one binary for all, the target chosen by
/// `PDRELAY_FUZZ_TARGET` (`scripts/fuzz` sets it). Each target feeds the input to a parser and
/// then uses what it returns, so that a parser which hands back something inconsistent (a
/// field past the input, an event the validator refuses) trips a precondition here too.
enum FuzzTarget: String, CaseIterable {
    case syslog, snmp, webhook, lines, framer, peerstream

    static let selected: FuzzTarget = {
        let name = getenv("PDRELAY_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fatalError("set PDRELAY_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()

    static let rules = try! GatewayRules(
        try! JSONValue.parse(
            Array(
                #"""
                {"syslog": {"rules": [{"name": "r", "match": {"severity": ["crit", "err"]}, "regex": {"message": "(?<word>[a-z]+) (?<n>[0-9]+)"},
                  "event": {"routing_key": "R0UTINGKEY0000000000000000000001", "summary": "{hostname}: {word} {n}", "dedup_key": "{hostname}/{app}/{word}"}}],
                  "unmatched": {"routing_key": "R0UTINGKEY0000000000000000000001", "action": "{msgid}", "dedup_key": "{app}"}},
                 "lines": {"unmatched": {"routing_key": "R0UTINGKEY0000000000000000000001", "summary": "{msg}", "severity": "{level}", "dedup_key": "{site}/{unit}"}}}
                """#.utf8)),
        file: "fuzz")

    func run(_ bytes: [UInt8]) {
        switch self {
        case .syslog:
            guard let message = try? SyslogParser.parse(bytes) else { return }
            check(RuleMatcher(Self.rules, gateway: .syslog).map(message.fields(sender: "192.0.2.1")))
        case .snmp:
            guard let trap = try? SNMPTrapParser.parse(bytes) else { return }
            precondition(trap.bindings.count <= SNMPTrapParser.maxBindings, "more bindings than the parser allows")
            _ = trap.fields(sender: "192.0.2.1")
        case .webhook:
            _ = WebhookSignature.isValid(
                body: bytes, header: String(decoding: bytes.prefix(200), as: UTF8.self), secrets: ["0123456789abcdef"])
            guard let webhook = try? PagerDutyWebhook.parse(bytes) else { return }
            precondition(!webhook.eventID.isEmpty && !webhook.eventType.isEmpty, "a webhook without its id or type")
            _ = webhook.status
        case .lines:
            guard let fields = try? LineParser.parse(bytes) else { return }
            precondition(fields.count <= LineParser.maxFields, "more fields than the parser allows")
            check(RuleMatcher(Self.rules, gateway: .lines).map(fields.merging(["sender": "192.0.2.1"]) { a, _ in a }))
        case .framer:
            var framer = StreamFramer(maxMessageBytes: 64)
            var items = framer.feed(bytes.prefix(bytes.count / 2))
            items += framer.feed(bytes.dropFirst(bytes.count / 2))
            items += framer.finish()
            for case .message(let message) in items { precondition(message.count <= 64, "a frame over the limit") }
        case .peerstream:
            PeerStreamFuzzing.run(bytes)
        }
    }

    /// An event the rules built must be one PagerDuty's rules (as the HTTP endpoint applies
    /// them) accept: the gateways feed the same intake.
    private func check(_ verdict: GatewayVerdict) {
        guard case .event(let body, _, _) = verdict else { return }
        if case .failure(let error) = EventValidator.validate(body: body, api: .v2Alert) {
            preconditionFailure("the rules built an event the validator refuses: \(error)")
        }
    }
}

#if FUZZING
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
        FuzzTarget.selected.run(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
#else
    /// Without libFuzzer: replays the files named on the command line (a corpus, or a crash
    /// libFuzzer saved) through the selected target.
    @main struct FuzzReplay {
        static func main() throws {
            for path in CommandLine.arguments.dropFirst() {
                guard let file = fopen(path, "rb") else { fatalError("cannot open \(path)") }
                var bytes: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let count = fread(&buffer, 1, buffer.count, file)
                    if count <= 0 { break }
                    bytes += buffer[..<count]
                }
                fclose(file)
                FuzzTarget.selected.run(bytes)
                print("\(path): ok")
            }
        }
    }
#endif
