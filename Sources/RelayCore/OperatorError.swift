/// Why an operator's or a monitored source's request (a maintenance window, a heartbeat) was
/// refused. The state machine decides it, so every node refuses alike; the API answers with the
/// status its kind names and the description as the message.
public struct OperatorError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// The request asks for something the rules refuse (400).
        case invalid
        /// The routing key does not match the one the thing was made with (403).
        case forbidden
        /// No such thing (404).
        case unknown
        /// It cannot change that way now: a window that has ended, a check-in that declares
        /// another interval (409).
        case conflict
    }

    public let kind: Kind
    public let description: String

    public init(_ description: String, kind: Kind = .invalid) {
        self.kind = kind
        self.description = description
    }
}
