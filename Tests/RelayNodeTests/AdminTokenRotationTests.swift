import RelayClient
import RelayTestSupport
import Testing

/// `admin_token_next`: during a rotation the admin API takes either token, and nothing else.
@Suite struct AdminTokenRotationTests {
    @Test func bothTokensAreAcceptedDuringARotationAndNoOther() async throws {
        let current = "correct-horse-battery-staple"
        let next = "the-next-token-0123456789"
        try await TestNode.run(configure: {
            $0.adminToken = current
            $0.adminTokenNext = next
        }) { node in
            for (token, status) in [(current, 200), (next, 200), ("not-the-token-at-all-0000", 401)] {
                let client = RelayClient(baseURL: node.client.baseURL, adminToken: token)
                #expect(try await client.get("/v1/queue/status").status == status, "token \(token.prefix(4))…")
                try await client.shutdown()
            }
        }
    }
}
