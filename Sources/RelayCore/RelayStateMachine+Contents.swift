extension RelayStateMachine {
    /// The whole replicated state, in the form the store and a snapshot hold it.
    public struct Contents: Sendable, Equatable {
        public var events: [QueuedEvent]
        public var dedupEntries: [DedupEntry]
        public var nextEventNumber: UInt64
        public var intents: [DeliveryIntent]
        public var folders: [IncidentFolder]
        public var windows: [MaintenanceWindow]
        public var held: [HeldEvent]
        public var nextWindowID: UInt64
        public var heartbeats: [Heartbeat]
        public var digests: [Digest]
        /// Oldest first.
        public var drills: [DrillRecord]

        public init(
            events: [QueuedEvent] = [], dedupEntries: [DedupEntry] = [], nextEventNumber: UInt64 = 1, intents: [DeliveryIntent] = [],
            folders: [IncidentFolder] = [], windows: [MaintenanceWindow] = [], held: [HeldEvent] = [], nextWindowID: UInt64 = 1,
            heartbeats: [Heartbeat] = [], digests: [Digest] = [], drills: [DrillRecord] = []
        ) {
            self.digests = digests
            self.drills = drills
            self.heartbeats = heartbeats
            self.windows = windows
            self.held = held
            self.nextWindowID = nextWindowID
            self.events = events
            self.dedupEntries = dedupEntries
            self.nextEventNumber = nextEventNumber
            self.intents = intents
            self.folders = folders
        }
    }
}
