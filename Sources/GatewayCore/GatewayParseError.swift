/// Why a gateway could not read a message. The listener counts it under `reason` and logs the
/// text at a bounded rate; the listener itself carries on with the next message.
public struct GatewayParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A short metric label: `bad_pri`, `bad_header`, `bad_ber`, `too_large`.
    public let reason: String
    public let description: String

    public init(_ reason: String, _ description: String) {
        self.reason = reason
        self.description = description
    }
}
