import RelayClient
import RelayTestSupport
import Testing

/// `admin_token_next`: during a rotation the admin API takes either token, and nothing else.
@Suite(RelayLoad.node) struct AdminTokenRotationTests {
    @Test func bothTokensAreAcceptedDuringARotationAndNoOther() async throws {
        let current = "correct-horse-battery-staple"
        let next = "the-next-token-0123456789"
        try await TestNode.run(configure: {
            $0.adminToken = current
            $0.adminTokenNext = next
        }) { node in
            for (token, status) in [(current, 200), (next, 200), ("not-the-token-at-all-0000", 401)] {
                // `with` shuts the client down whatever happens: a client left open crashes the test process.
                let answered = try await RelayClient.with(baseURL: node.client.baseURL, adminToken: token) {
                    try await $0.get("/v1/queue/status").status
                }
                #expect(answered == status, "token \(token.prefix(4))…")
            }
        }
    }
}
