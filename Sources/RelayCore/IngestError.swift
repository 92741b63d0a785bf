/// PagerDuty's 400 body: `{"status","message","errors":[...]}`.
public struct IngestError: Error, Sendable, Equatable {
    public let status: String
    public let message: String
    public let errors: [String]

    public init(status: String, message: String, errors: [String]) {
        self.status = status
        self.message = message
        self.errors = errors
    }

    public static func unrecognized(_ detail: String) -> IngestError {
        IngestError(status: "Unrecognized object", message: "Event object format is unrecognized", errors: [detail])
    }

    public static func invalid(_ errors: [String]) -> IngestError {
        IngestError(status: "invalid event", message: "Event object is invalid", errors: errors)
    }

    /// The `errors` field of metrics: a stable reason label, not the free text.
    public var reason: String { status == "invalid event" ? "invalid_event" : "unrecognized_object" }
}
