/// Routing keys are credentials: anyone holding one can open incidents. They never appear in
/// logs, metrics or CLI output in full.
public enum RoutingKeyMask {
    public static func mask(_ routingKey: String) -> String {
        guard routingKey.count > 8 else { return String(repeating: "*", count: routingKey.count) }
        return "\(routingKey.prefix(2))…\(routingKey.suffix(4))"
    }
}
