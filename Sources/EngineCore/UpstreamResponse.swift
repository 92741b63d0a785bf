/// What one upstream attempt came back with.
public struct UpstreamResponse: Sendable, Equatable {
    /// Nil when no HTTP answer arrived (timeout, refused connection, TLS failure).
    public var statusCode: Int?
    public var retryAfter: String?
    /// PagerDuty's body, or the error, shortened for logs and the attempt history.
    public var detail: String

    public init(statusCode: Int?, retryAfter: String? = nil, detail: String) {
        self.statusCode = statusCode
        self.retryAfter = retryAfter
        self.detail = detail
    }
}
