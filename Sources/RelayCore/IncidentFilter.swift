/// Selects incident folders for `GET /v1/incidents`. Empty fields match everything.
public struct IncidentFilter: Sendable, Equatable {
    public var states: Set<IncidentFolder.State>
    public var routingKey: String?
    public var source: String?
    public var dedupKey: String?

    public init(
        states: Set<IncidentFolder.State> = Set(IncidentFolder.State.allCases), routingKey: String? = nil, source: String? = nil,
        dedupKey: String? = nil
    ) {
        self.states = states
        self.routingKey = routingKey
        self.source = source
        self.dedupKey = dedupKey
    }

    public func matches(_ folder: IncidentFolder) -> Bool {
        states.contains(folder.state) && (routingKey.map { $0 == folder.key.routingKey } ?? true)
            && (source.map { $0 == folder.source } ?? true) && (dedupKey.map { $0 == folder.key.dedupKey } ?? true)
    }
}
