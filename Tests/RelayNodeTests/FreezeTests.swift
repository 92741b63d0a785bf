import Foundation
import NIOConcurrencyHelpers
import RelayNode
import RelayTestSupport
import Testing

/// A node whose process was frozen refuses the client requests it read before it woke: HAProxy
/// has retried them elsewhere, and a late copy could land after the incident's next events.
@Suite(RelayLoad.node) struct FreezeTests {
    @Test func requestsReadAroundAFreezeAreRefusedAndLaterOnesTaken() async throws {
        let jump = NIOLockedValueBox<Int64>(0)
        var environment = NodeEnvironment.live
        let live = environment.monotonicMilliseconds
        environment.monotonicMilliseconds = { live() + jump.withLockedValue { $0 } }
        // Wide enough that the next request is read within it even on a loaded machine.
        environment.afterFreezeGraceMilliseconds = 3_000
        // A test process starved by the simulator tests beside it is not a freeze; the leap
        // below is far beyond this.
        environment.freezeThresholdMilliseconds = 10_000
        try await TestNode.run(environment: environment) { node in
            #expect(try await node.send(TestSupport.alert(dedupKey: "before")).status == 202)
            // The clock leaps as it does for a process that was stopped for 30 s: the engine sees
            // the gap at its next look, and what arrives right then may have waited through it.
            jump.withLockedValue { $0 += 30_000 }
            let refused = try await node.send(TestSupport.alert(dedupKey: "at-the-wake"))
            #expect(refused.status == 503)
            #expect(refused.text.contains("paused after it arrived"), "\(refused.text)")
            // Past the grace after the wake, requests are taken again.
            var accepted = false
            let deadline = ContinuousClock.now + .seconds(30)
            while !accepted, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                accepted = try await node.send(TestSupport.alert(dedupKey: "after-the-wake")).status == 202
            }
            #expect(accepted)
        }
    }
}
