import Foundation
import RelayTestSupport
import Testing

/// The load-test harness as CI runs it: `pdrelay-loadtest bench --smoke` on the binaries the
/// tests built, against one real node and three real nodes behind a real HAProxy, with the
/// leader killed with SIGKILL and upstream errors. Only correctness is asserted, never speed.
@Suite(.serialized, RelayLoad.cluster) struct LoadTestSmokeTests {
    /// Runs `pdrelay-loadtest bench` with `arguments`, expects it to succeed, and returns the
    /// phases of the report it wrote to `output`.
    static func bench(_ arguments: [String], output: String) async throws -> [[String: Any]] {
        let run = try await CommandResult.run(
            "pdrelay-loadtest", ["bench"] + arguments + ["--output-dir", output], workingDirectory: TestSupport.packageRoot.path)
        #expect(run.status == 0, "\(run.stdout.suffix(3_000))\n\(run.stderr.suffix(2_000))")
        let report = try #require(
            TestSupport.json(Array(try Data(contentsOf: URL(fileURLWithPath: output + "/report.json")))), "report.json is written")
        return try #require(report["phases"] as? [[String: Any]])
    }

    @Test func theSmokeRunLosesNothingKeepsOrderAndWritesItsReport() async throws {
        let output = TestSupport.temporaryDirectory("loadtest-smoke")
        let phases = try await Self.bench(
            ["--smoke", "--relay-binary", TestSupport.binDirectory.appendingPathComponent("pdrelay").path], output: output)
        #expect(phases.compactMap { $0["name"] as? String } == ["single-node", "chaos"])
        for phase in phases {
            let name = phase["name"] as? String ?? "?"
            let audit = try #require(phase["audit"] as? [String: Any], "\(name) is audited")
            #expect(audit["lost"] as? Int == 0, "\(name): \(audit)")
            #expect(audit["orderViolations"] as? Int == 0, "\(name): \(audit)")
            #expect(audit["staleTermDeliveries"] as? Int == 0, "\(name): \(audit)")
            #expect(audit["duplicatesBeyondBound"] as? Int == 0, "\(name): \(audit)")
            #expect((audit["acknowledged"] as? Int ?? 0) > 100, "\(name) carried load: \(audit)")
            #expect((phase["upstreamStatuses"] as? [String: Int])?["500"] ?? 0 > 0, "\(name) met the scripted upstream errors")
            let chart = try String(contentsOfFile: output + "/chart-\(name).svg", encoding: .utf8)
            #expect(chart.hasPrefix("<svg") && chart.hasSuffix("</svg>\n"))
        }
        let chaos = try #require((phases.last?["chaos"] as? [[String: Any]])?.first, "the leader kill is reported")
        #expect(chaos["role"] as? String == "leader")
        #expect(chaos["firstAcceptedAfterMilliseconds"] as? Double != nil, "the cluster accepted events again after the kill")
        let table = try String(contentsOfFile: output + "/report.txt", encoding: .utf8)
        #expect(table.contains("lost events, all phases"))
    }

    /// The forwarding floor's phases run real forwarders in front of the mock, one directly and
    /// three behind HAProxy: a 202 reaches the generator only once the mock answered 202.
    @Test func theFloorPhasesForwardEveryEventToTheMock() async throws {
        let phases = try await Self.bench(
            ["--phases", "floor,floor-haproxy", "--baseline-seconds", "2", "--connections", "8"],
            output: TestSupport.temporaryDirectory("loadtest-floor"))
        #expect(phases.compactMap { $0["name"] as? String } == ["floor", "floor-haproxy"])
        for phase in phases {
            #expect((phase["accepted"] as? Int ?? 0) > 100, "\(phase["name"] ?? "?") carried load")
            #expect((phase["rejectedByStatus"] as? [String: Int])?.isEmpty ?? false, "\(phase["name"] ?? "?"): \(phase)")
        }
        let processes = try #require(phases.last?["processes"] as? [[String: Any]])
        let seconds = processes.filter { ($0["name"] as? String)?.hasPrefix("server-") == true }.compactMap { $0["cpuSeconds"] as? Double }
            .sorted(by: >)
        #expect(
            seconds.count == 3 && seconds[0] > 4 * seconds[1],
            "HAProxy sends the load to the one forwarder that answers /readyz/leader: \(processes)")
    }
}
