/// A setting, or a combination of settings, that the node refuses to run with.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
