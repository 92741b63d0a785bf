import Foundation
import MockPagerDuty
import NIOCore
import RelayCore
import RelayTestSupport
import Testing

@testable import RelayNode

/// The fencing rule's last line: an event's bytes never leave after its send deadline, even
/// when the process was frozen between starting the delivery and writing it.
@Suite(RelayLoad.node) struct SendDeadlineTests {
    @Test func theGuardedBodyWithholdsItsBytesOnceTheDeadlineHasPassed() {
        let bytes = Array(#"{"event_action":"trigger"}"#.utf8)
        let clock = NodeEnvironment.live.monotonicMilliseconds
        let live = DeadlineGuardedBytes(bytes: bytes, sendByMilliseconds: clock() + 60_000, now: clock)
        let expired = DeadlineGuardedBytes(bytes: bytes, sendByMilliseconds: clock() - 1, now: clock)
        // How AsyncHTTPClient turns a small body into the buffer it writes.
        #expect(Array(ByteBufferAllocator().buffer(bytes: live).readableBytesView) == bytes)
        #expect(ByteBufferAllocator().buffer(bytes: expired).readableBytes == 0)
    }

    @Test func pastTheDeadlinePagerDutyReceivesNothingItWouldProcess() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        var configuration = RelayConfiguration()
        configuration.upstreamURL = await upstream.baseURL
        let clock = NodeEnvironment.live.monotonicMilliseconds
        let client = try UpstreamClient(configuration: configuration, monotonicMilliseconds: clock)
        let body = TestSupport.alert(dedupKey: "too-late")
        let event = QueuedEvent(
            number: 1, kind: .alert, action: .trigger, key: OrderingKey(routingKey: TestSupport.routingKey(), dedupKey: "too-late"),
            body: body, fingerprint: [], receivedAtMilliseconds: 0)

        let late = await client.send(event, term: 1, sendByMilliseconds: clock() - 1)
        #expect(late.statusCode == nil)
        #expect(late.detail.contains("not sent"), "\(late.detail)")

        // The in-time send is the marker: a late request that leaked would have reached the
        // mock before it, so exactly one request means the late one never went out.
        let inTime = await client.send(event, term: 1, sendByMilliseconds: clock() + 5_000)
        #expect(inTime.statusCode == 202)
        #expect(await upstream.deliveries.map(\.dedupKey) == ["too-late"])
        try await client.shutdown()
        await upstream.stop()
    }
}
