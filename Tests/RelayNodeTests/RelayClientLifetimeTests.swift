import RelayClient
import Testing

/// A `RelayClient` dropped without `shutdown` (a test or command whose request threw first)
/// must not stop the process: AsyncHTTPClient traps when its client is released while running.
@Suite struct RelayClientLifetimeTests {
    @Test func aClientDroppedWithoutShutdownDoesNotStopTheProcess() async throws {
        for _ in 0..<3 {
            let client = RelayClient(baseURL: "http://127.0.0.1:9", timeoutMilliseconds: 200)
            _ = try? await client.get("/healthz")
        }
        // Still running: a client made after the dropped ones works, and shuts down twice harmlessly.
        let client = RelayClient(baseURL: "http://127.0.0.1:9", timeoutMilliseconds: 200)
        try await client.shutdown()
        try await client.shutdown()
    }
}
