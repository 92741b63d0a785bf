/// What one upstream attempt came back with.
struct UpstreamResponse: Sendable {
    /// Nil when no HTTP answer arrived (timeout, refused connection, TLS failure).
    var statusCode: Int?
    var retryAfter: String?
    /// PagerDuty's body, or the error, shortened for logs and the attempt history.
    var detail: String
}
