/// A compact, versionless binary encoding for what nodes send each other and keep in their
/// logs: LEB128 integers, length-prefixed bytes. Peer batches and log entries are encoded with
/// it instead of JSON, which costs several times more CPU per event to produce and parse.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func write(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// Zig-zag, so small negative numbers stay small.
    public mutating func write(_ value: Int64) { write(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }
    public mutating func write(_ value: Int) { write(Int64(value)) }
    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func write(_ value: [UInt8]) {
        write(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func write(_ value: String) { write(Array(value.utf8)) }

    /// Bytes as they are, without a length: only as the last thing written (`readRemaining`).
    public mutating func write(raw value: [UInt8]) { bytes.append(contentsOf: value) }

    /// A count, then each item. The generic helpers are inlinable so that the codecs in other
    /// modules (messages, log entries) get specialized copies rather than look up type metadata
    /// at every call, which the leader's profile showed on its hot path.
    @inlinable
    public mutating func write<T>(list: [T], _ body: (inout ByteWriter, T) -> Void) {
        write(UInt64(list.count))
        for item in list { body(&self, item) }
    }

    @inlinable
    public mutating func write<T>(optional value: T?, _ body: (inout ByteWriter, T) -> Void) {
        write(value != nil)
        if let value { body(&self, value) }
    }
}

public struct ByteReader: Sendable {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset == bytes.count }

    /// Everything not yet read (what `ByteWriter.write(raw:)` wrote last).
    public mutating func readRemaining() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }

    public mutating func readUInt64() throws(DecodingFailure) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count, shift < 64 else { throw DecodingFailure("truncated or overlong integer") }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    public mutating func readInt64() throws(DecodingFailure) -> Int64 {
        let raw = try readUInt64()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    public mutating func readInt() throws(DecodingFailure) -> Int {
        let value = try readInt64()
        guard let int = Int(exactly: value) else { throw DecodingFailure("integer out of range") }
        return int
    }

    public mutating func readBool() throws(DecodingFailure) -> Bool {
        guard offset < bytes.count, bytes[offset] <= 1 else { throw DecodingFailure("bad boolean") }
        offset += 1
        return bytes[offset - 1] == 1
    }

    public mutating func readBytes() throws(DecodingFailure) -> [UInt8] {
        let count = try readUInt64()
        guard count <= UInt64(bytes.count - offset) else { throw DecodingFailure("length \(count) runs past the end") }
        defer { offset += Int(count) }
        return Array(bytes[offset..<offset + Int(count)])
    }

    public mutating func readString() throws(DecodingFailure) -> String {
        String(decoding: try readBytes(), as: UTF8.self)
    }

    @inlinable
    public mutating func read<T>(optional body: (inout ByteReader) throws(DecodingFailure) -> T) throws(DecodingFailure) -> T? {
        try readBool() ? try body(&self) : nil
    }

    public mutating func read<T: RawRepresentable<String>>(_ type: T.Type) throws(DecodingFailure) -> T {
        let raw = try readString()
        guard let value = T(rawValue: raw) else { throw DecodingFailure("unknown \(T.self) '\(raw.prefix(40))'") }
        return value
    }

    /// What `ByteWriter.write(list:)` wrote.
    @inlinable
    public mutating func readList<T>(_ body: (inout ByteReader) throws(DecodingFailure) -> T) throws(DecodingFailure) -> [T] {
        var items: [T] = []
        for _ in 0..<(try readCount()) { items.append(try body(&self)) }
        return items
    }

    /// A count of items that follow, refused if it could not possibly fit in what is left.
    public mutating func readCount() throws(DecodingFailure) -> Int {
        let count = try readUInt64()
        guard count <= UInt64(bytes.count - offset) else { throw DecodingFailure("count \(count) runs past the end") }
        return Int(count)
    }
}

public struct DecodingFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The relay's own types, in the binary encoding.
extension ByteWriter {
    public mutating func write(_ key: OrderingKey) {
        write(key.routingKey)
        write(key.dedupKey)
    }

    public mutating func write(_ attempt: AttemptRecord) {
        write(attempt.outcome.rawValue)
        write(attempt.atMilliseconds)
        write(attempt.durationMilliseconds)
        write(optional: attempt.statusCode) { $0.write($1) }
        write(attempt.detail)
    }

    public mutating func write(_ filter: EventFilter) {
        write(optional: filter.routingKey) { $0.write($1) }
        write(optional: filter.dedupKey) { $0.write($1) }
        write(optional: filter.eventNumber) { $0.write($1) }
        let states = filter.states.map(\.rawValue).sorted()
        write(UInt64(states.count))
        for state in states { write(state) }
    }

    public mutating func write(_ command: RelayCommand) {
        switch command {
        case .accept(let acceptance):
            // Tag 0 is an acceptance without facts, as logged before folders existed; 5 adds them.
            bytes.append(acceptance.facts == nil ? 0 : 5)
            write(acceptance.kind.rawValue)
            write(acceptance.action.rawValue)
            write(acceptance.key)
            write(acceptance.keyWasAssigned)
            write(acceptance.body)
            write(acceptance.fingerprint)
            write(acceptance.receivedAtMilliseconds)
            if let facts = acceptance.facts { write(facts) }
        case .recordAttempt(let number, let attempt):
            bytes.append(1)
            write(number)
            write(attempt)
        case .retryDead(let filter):
            bytes.append(2)
            write(filter)
        case .purge(let filter):
            bytes.append(3)
            write(filter)
        case .openIntent(let intent):
            bytes.append(4)
            write(intent)
        case .acceptAndOpenIntent(let acceptance, let term):
            // The acceptance as its own command, tag and all, behind the term.
            bytes.append(17)
            write(term)
            write(RelayCommand.accept(acceptance))
        case .recordAttemptAndOpenIntent(let number, let attempt, let next):
            bytes.append(18)
            write(next)
            write(RelayCommand.recordAttempt(eventNumber: number, attempt))
        case .openWindow(let spec, let time):
            bytes.append(6)
            write(spec)
            write(time)
        case .changeWindow(let id, let change, let time):
            bytes.append(7)
            write(id)
            write(optional: change.startsAtMilliseconds) { $0.write($1) }
            write(optional: change.endsAtMilliseconds) { $0.write($1) }
            write(optional: change.routingKeys) { $0.write(strings: $1) }
            write(optional: change.sourcePattern) { writer, pattern in writer.write(optional: pattern) { $0.write($1) } }
            write(optional: change.reason) { $0.write($1) }
            write(optional: change.hold) { $0.write($1) }
            write(time)
        case .endWindow(let id, let time):
            bytes.append(8)
            write(id)
            write(time)
        case .releaseWindows(let time):
            bytes.append(9)
            write(time)
        case .putHeartbeat(let name, let spec, let time):
            bytes.append(10)
            write(name)
            write(spec)
            write(time)
        case .checkIn(let name, let routingKey, let interval, let time):
            bytes.append(11)
            write(name)
            write(routingKey)
            write(optional: interval) { $0.write($1) }
            write(time)
        case .deleteHeartbeat(let name, let time):
            bytes.append(12)
            write(name)
            write(time)
        case .heartbeatMissed(let name, let checkIns, let time):
            bytes.append(13)
            write(name)
            write(checkIns)
            write(time)
        case .flushDigests(let time):
            bytes.append(14)
            write(time)
        case .recordDrill(let drill):
            bytes.append(15)
            write(drill)
        case .applyWebhook(let dedupKey, let view):
            bytes.append(16)
            write(dedupKey)
            write(view)
        }
    }

    public mutating func write(_ digest: Digest) {
        write(digest.routingKey)
        write(digest.startedAtMilliseconds)
        write(digest.lastAtMilliseconds)
        write(digest.count)
        write(digest.otherCount)
        write(UInt64(digest.entries.count))
        for entry in digest.entries {
            write(entry.source)
            write(entry.summary)
            write(entry.count)
            write(entry.firstAtMilliseconds)
            write(entry.lastAtMilliseconds)
        }
    }

    public mutating func write(_ spec: Heartbeat.Spec) {
        write(spec.routingKey)
        write(spec.intervalMilliseconds)
        write(spec.graceMilliseconds)
        write(spec.severity.rawValue)
        write(spec.source)
    }

    public mutating func write(_ heartbeat: Heartbeat) {
        write(heartbeat.name)
        write(heartbeat.spec)
        write(heartbeat.createdAtMilliseconds)
        write(optional: heartbeat.lastCheckInAtMilliseconds) { $0.write($1) }
        write(heartbeat.checkIns)
        write(heartbeat.alarmed)
        write(heartbeat.alarms)
    }

    public mutating func write(strings: [String]) {
        write(UInt64(strings.count))
        for string in strings { write(string) }
    }

    public mutating func write(_ spec: MaintenanceWindow.Spec) {
        write(spec.startsAtMilliseconds)
        write(spec.endsAtMilliseconds)
        write(strings: spec.routingKeys)
        write(optional: spec.sourcePattern) { $0.write($1) }
        write(spec.reason)
        write(spec.hold)
    }

    public mutating func write(_ window: MaintenanceWindow) {
        write(window.id)
        write(window.spec)
        write(window.createdAtMilliseconds)
        write(window.suppressedCount)
        write(window.heldCount)
    }

    public mutating func write(_ event: HeldEvent) {
        write(event.windowID)
        write(event.sequence)
        write(RelayCommand.accept(event.acceptance))
    }

    public mutating func write(_ result: CommandResult) {
        switch result {
        case .accepted(let key, let number): writeTagged(0, key, number)
        case .duplicate(let key, let number): writeTagged(1, key, number)
        case .coalesced(let key, let number): writeTagged(2, key, number)
        case .queueFull: bytes.append(3)
        case .attemptRecorded: bytes.append(4)
        case .eventGone: bytes.append(5)
        case .retried(let count, let superseded):
            bytes.append(6)
            write(count)
            write(superseded)
        case .purged(let count):
            bytes.append(7)
            write(count)
        case .intentOpened: bytes.append(8)
        case .repeatSuppressed(let key):
            bytes.append(9)
            write(key)
        case .suppressedByMaintenance(let key, let id): writeTagged(10, key, id)
        case .held(let key, let id): writeTagged(11, key, id)
        case .windowSaved(let window):
            bytes.append(12)
            write(window)
        case .windowEnded(let window, let released):
            bytes.append(13)
            write(window)
            write(released)
        case .windowRefused(let error):
            bytes.append(14)
            write(error.kind.rawValue)
            write(error.description)
        case .windowsReleased(let count):
            bytes.append(15)
            write(count)
        case .heartbeatSaved(let heartbeat):
            bytes.append(16)
            write(heartbeat)
        case .heartbeatRefused(let error):
            bytes.append(17)
            write(error.kind.rawValue)
            write(error.description)
        case .heartbeatUpdated(let heartbeat):
            bytes.append(18)
            write(heartbeat)
        case .heartbeatDeleted(let heartbeat):
            bytes.append(19)
            write(heartbeat)
        case .digested(let key):
            bytes.append(20)
            write(key)
        case .digestsFlushed(let count):
            bytes.append(21)
            write(count)
        case .drillRecorded(let drill):
            bytes.append(22)
            write(drill)
        case .drillRefused(let error):
            bytes.append(23)
            write(error.kind.rawValue)
            write(error.description)
        case .webhookApplied(let folders, let refusals):
            bytes.append(24)
            write(folders)
            write(list: refusals) { $0.write($1) }
        }
    }

    private mutating func writeTagged(_ tag: UInt8, _ key: String, _ number: UInt64) {
        bytes.append(tag)
        write(key)
        write(number)
    }

    public mutating func write(_ event: QueuedEvent) {
        write(event.number)
        write(event.kind.rawValue)
        write(event.action.rawValue)
        write(event.key)
        write(event.body)
        write(event.fingerprint)
        write(event.receivedAtMilliseconds)
        write(event.state.rawValue)
        write(event.attempts)
        write(optional: event.lastError) { $0.write($1) }
    }

    public mutating func write(_ intent: DeliveryIntent) {
        write(intent.key)
        write(intent.eventNumber)
        write(intent.term)
        write(intent.attempt)
    }

    public mutating func write(_ facts: IncidentFacts) {
        write(optional: facts.severity) { $0.write($1.rawValue) }
        write(facts.summary)
        write(facts.source)
    }

    public mutating func write(_ folder: IncidentFolder) {
        write(folder.key)
        write(folder.state.rawValue)
        write(folder.source)
        write(folder.summary)
        write(optional: folder.severity) { $0.write($1.rawValue) }
        write(folder.firstSeenAtMilliseconds)
        write(folder.lastSeenAtMilliseconds)
        write(folder.counts.triggers)
        write(folder.counts.acknowledges)
        write(folder.counts.resolves)
        write(folder.counts.repeatsSuppressed)
        write(optional: folder.lastForwardedTrigger) { writer, trigger in
            writer.write(trigger.eventNumber)
            writer.write(optional: trigger.severity) { $0.write($1.rawValue) }
            writer.write(trigger.summary)
            writer.write(trigger.receivedAtMilliseconds)
        }
        write(UInt64(folder.history.count))
        for entry in folder.history {
            write(optional: entry.eventNumber) { $0.write($1) }
            write(entry.action.rawValue)
            write(optional: entry.severity) { $0.write($1.rawValue) }
            write(entry.summary)
            write(entry.receivedAtMilliseconds)
            write(entry.outcome.rawValue)
        }
        write(folder.droppedEntries)
        write(folder.sequence)
        write(optional: folder.pagerDuty) { $0.write($1) }
    }

    public mutating func write(_ view: PagerDutyView) {
        write(view.webhookID)
        write(view.status.rawValue)
        write(optional: view.by) { $0.write($1) }
        write(view.occurredAtMilliseconds)
        write(view.incidentID)
    }

    public mutating func write(_ entry: DedupEntry) {
        write(entry.key)
        write(entry.lastNumber)
        write(entry.lastAction.rawValue)
        write(entry.lastFingerprint)
        write(entry.lastAcceptedAtMilliseconds)
        write(entry.keyWasAssigned)
    }
}

extension ByteReader {
    public mutating func readOrderingKey() throws(DecodingFailure) -> OrderingKey {
        OrderingKey(routingKey: try readString(), dedupKey: try readString())
    }

    public mutating func readAttempt() throws(DecodingFailure) -> AttemptRecord {
        AttemptRecord(
            outcome: try read(AttemptRecord.Outcome.self), atMilliseconds: try readInt64(), durationMilliseconds: try readInt64(),
            statusCode: try read { (reader) throws(DecodingFailure) in try reader.readInt() }, detail: try readString())
    }

    public mutating func readFilter() throws(DecodingFailure) -> EventFilter {
        let routingKey = try read { (reader) throws(DecodingFailure) in try reader.readString() }
        let dedupKey = try read { (reader) throws(DecodingFailure) in try reader.readString() }
        let number = try read { (reader) throws(DecodingFailure) in try reader.readUInt64() }
        var states: Set<QueuedEvent.State> = []
        for _ in 0..<(try readCount()) { states.insert(try read(QueuedEvent.State.self)) }
        return EventFilter(routingKey: routingKey, dedupKey: dedupKey, eventNumber: number, states: states)
    }

    public mutating func readCommand() throws(DecodingFailure) -> RelayCommand {
        switch try readUInt64() {
        case let tag where tag == 0 || tag == 5:
            return .accept(try readAcceptance(withFacts: tag == 5))
        case 1: return .recordAttempt(eventNumber: try readUInt64(), try readAttempt())
        case 2: return .retryDead(try readFilter())
        case 3: return .purge(try readFilter())
        case 4: return .openIntent(try readIntent())
        case 6: return .openWindow(try readWindowSpec(), atMilliseconds: try readInt64())
        case 7:
            let id = try readUInt64()
            let change = MaintenanceWindow.Change(
                startsAtMilliseconds: try read { (reader) throws(DecodingFailure) in try reader.readInt64() },
                endsAtMilliseconds: try read { (reader) throws(DecodingFailure) in try reader.readInt64() },
                routingKeys: try read { (reader) throws(DecodingFailure) in try reader.readStrings() },
                sourcePattern: try read { (reader) throws(DecodingFailure) in
                    try reader.read { (reader) throws(DecodingFailure) in try reader.readString() }
                },
                reason: try read { (reader) throws(DecodingFailure) in try reader.readString() },
                hold: try read { (reader) throws(DecodingFailure) in try reader.readBool() })
            return .changeWindow(id: id, change, atMilliseconds: try readInt64())
        case 8: return .endWindow(id: try readUInt64(), atMilliseconds: try readInt64())
        case 9: return .releaseWindows(atMilliseconds: try readInt64())
        case 10: return .putHeartbeat(name: try readString(), try readHeartbeatSpec(), atMilliseconds: try readInt64())
        case 11:
            return .checkIn(
                name: try readString(), routingKey: try readString(),
                intervalMilliseconds: try read { (reader) throws(DecodingFailure) in try reader.readInt64() },
                atMilliseconds: try readInt64())
        case 12: return .deleteHeartbeat(name: try readString(), atMilliseconds: try readInt64())
        case 13: return .heartbeatMissed(name: try readString(), checkIns: try readUInt64(), atMilliseconds: try readInt64())
        case 14: return .flushDigests(atMilliseconds: try readInt64())
        case 15: return .recordDrill(try readDrill())
        case 16: return .applyWebhook(dedupKey: try readString(), try readPagerDutyView())
        // The inner command's tag is checked here rather than read through `readCommand`, so
        // that no input nests commands (and recursion) without bound.
        case 17:
            let term = try readUInt64()
            let inner = try readUInt64()
            guard inner == 0 || inner == 5 else { throw DecodingFailure("an intent-carrying acceptance holds command tag \(inner)") }
            return .acceptAndOpenIntent(try readAcceptance(withFacts: inner == 5), term: term)
        case 18:
            let next = try readIntent()
            let inner = try readUInt64()
            guard inner == 1 else { throw DecodingFailure("an intent-carrying outcome holds command tag \(inner)") }
            return .recordAttemptAndOpenIntent(eventNumber: try readUInt64(), try readAttempt(), next: next)
        case let tag: throw DecodingFailure("unknown command tag \(tag)")
        }
    }

    private mutating func readAcceptance(withFacts: Bool) throws(DecodingFailure) -> Acceptance {
        Acceptance(
            kind: try read(EventKind.self), action: try read(EventAction.self), key: try readOrderingKey(),
            keyWasAssigned: try readBool(), body: try readBytes(), fingerprint: try readBytes(),
            receivedAtMilliseconds: try readInt64(), facts: withFacts ? try readFacts() : nil)
    }

    public mutating func readResult() throws(DecodingFailure) -> CommandResult {
        switch try readUInt64() {
        case 0: return .accepted(dedupKey: try readString(), eventNumber: try readUInt64())
        case 1: return .duplicate(dedupKey: try readString(), eventNumber: try readUInt64())
        case 2: return .coalesced(dedupKey: try readString(), eventNumber: try readUInt64())
        case 3: return .queueFull
        case 4: return .attemptRecorded
        case 5: return .eventGone
        case 6: return .retried(count: try readInt(), superseded: try readInt())
        case 7: return .purged(count: try readInt())
        case 8: return .intentOpened
        case 9: return .repeatSuppressed(dedupKey: try readString())
        case 10: return .suppressedByMaintenance(dedupKey: try readString(), windowID: try readUInt64())
        case 11: return .held(dedupKey: try readString(), windowID: try readUInt64())
        case 12: return .windowSaved(try readWindow())
        case 13: return .windowEnded(try readWindow(), released: try readInt())
        case 14:
            let kind = try read(OperatorError.Kind.self)
            return .windowRefused(OperatorError(try readString(), kind: kind))
        case 15: return .windowsReleased(count: try readInt())
        case 16: return .heartbeatSaved(try readHeartbeat())
        case 17:
            let kind = try read(OperatorError.Kind.self)
            return .heartbeatRefused(OperatorError(try readString(), kind: kind))
        case 18: return .heartbeatUpdated(try readHeartbeat())
        case 19: return .heartbeatDeleted(try readHeartbeat())
        case 20: return .digested(dedupKey: try readString())
        case 21: return .digestsFlushed(count: try readInt())
        case 22: return .drillRecorded(try readDrill())
        case 24:
            return .webhookApplied(
                folders: try readInt(), refusals: try readList { (reader) throws(DecodingFailure) in try reader.readString() })
        case 23:
            let kind = try read(OperatorError.Kind.self)
            return .drillRefused(OperatorError(try readString(), kind: kind))
        case let tag: throw DecodingFailure("unknown result tag \(tag)")
        }
    }

    public mutating func readEvent() throws(DecodingFailure) -> QueuedEvent {
        QueuedEvent(
            number: try readUInt64(), kind: try read(EventKind.self), action: try read(EventAction.self), key: try readOrderingKey(),
            body: try readBytes(), fingerprint: try readBytes(), receivedAtMilliseconds: try readInt64(),
            state: try read(QueuedEvent.State.self), attempts: try readInt(),
            lastError: try read { (reader) throws(DecodingFailure) in try reader.readString() })
    }

    public mutating func readIntent() throws(DecodingFailure) -> DeliveryIntent {
        let key = try readOrderingKey()
        let eventNumber = try readUInt64()
        let term = try readUInt64()
        let attempt = try readInt()
        guard attempt > 0 else { throw DecodingFailure("an intent's attempt must count from 1, not \(attempt)") }
        return DeliveryIntent(key: key, eventNumber: eventNumber, term: term, attempt: attempt)
    }

    public mutating func readStrings() throws(DecodingFailure) -> [String] {
        var strings: [String] = []
        for _ in 0..<(try readCount()) { strings.append(try readString()) }
        return strings
    }

    public mutating func readWindowSpec() throws(DecodingFailure) -> MaintenanceWindow.Spec {
        MaintenanceWindow.Spec(
            startsAtMilliseconds: try readInt64(), endsAtMilliseconds: try readInt64(), routingKeys: try readStrings(),
            sourcePattern: try read { (reader) throws(DecodingFailure) in try reader.readString() }, reason: try readString(),
            hold: try readBool())
    }

    public mutating func readWindow() throws(DecodingFailure) -> MaintenanceWindow {
        MaintenanceWindow(
            id: try readUInt64(), spec: try readWindowSpec(), createdAtMilliseconds: try readInt64(), suppressedCount: try readInt(),
            heldCount: try readInt())
    }

    public mutating func readDigest() throws(DecodingFailure) -> Digest {
        let routingKey = try readString()
        let started = try readInt64()
        let last = try readInt64()
        let count = try readInt()
        let other = try readInt()
        let entryCount = try readCount()
        guard entryCount <= Digest.maxEntries else { throw DecodingFailure("a digest with \(entryCount) entries") }
        var entries: [Digest.Entry] = []
        for _ in 0..<entryCount {
            entries.append(
                Digest.Entry(
                    source: try readString(), summary: try readString(), count: try readInt(), firstAtMilliseconds: try readInt64(),
                    lastAtMilliseconds: try readInt64()))
        }
        return Digest(
            routingKey: routingKey, startedAtMilliseconds: started, lastAtMilliseconds: last, count: count, otherCount: other,
            entries: entries)
    }

    public mutating func readHeartbeatSpec() throws(DecodingFailure) -> Heartbeat.Spec {
        Heartbeat.Spec(
            routingKey: try readString(), intervalMilliseconds: try readInt64(), graceMilliseconds: try readInt64(),
            severity: try read(Severity.self), source: try readString())
    }

    public mutating func readHeartbeat() throws(DecodingFailure) -> Heartbeat {
        Heartbeat(
            name: try readString(), spec: try readHeartbeatSpec(), createdAtMilliseconds: try readInt64(),
            lastCheckInAtMilliseconds: try read { (reader) throws(DecodingFailure) in try reader.readInt64() }, checkIns: try readUInt64(),
            alarmed: try readBool(), alarms: try readInt())
    }

    public mutating func readHeldEvent() throws(DecodingFailure) -> HeldEvent {
        let windowID = try readUInt64()
        let sequence = try readUInt64()
        guard case .accept(let acceptance) = try readCommand() else { throw DecodingFailure("a held event that is not an acceptance") }
        return HeldEvent(windowID: windowID, sequence: sequence, acceptance: acceptance)
    }

    public mutating func readFacts() throws(DecodingFailure) -> IncidentFacts {
        IncidentFacts(
            severity: try read { (reader) throws(DecodingFailure) in try reader.read(Severity.self) }, summary: try readString(),
            source: try readString())
    }

    public mutating func readFolder() throws(DecodingFailure) -> IncidentFolder {
        let key = try readOrderingKey()
        let state = try read(IncidentFolder.State.self)
        let source = try readString()
        let summary = try readString()
        let severity = try read { (reader) throws(DecodingFailure) in try reader.read(Severity.self) }
        let firstSeen = try readInt64()
        let lastSeen = try readInt64()
        var counts = IncidentFolder.Counts()
        counts.triggers = try readInt()
        counts.acknowledges = try readInt()
        counts.resolves = try readInt()
        counts.repeatsSuppressed = try readInt()
        let forwarded = try read { (reader) throws(DecodingFailure) in
            IncidentFolder.ForwardedTrigger(
                eventNumber: try reader.readUInt64(),
                severity: try reader.read { (reader) throws(DecodingFailure) in try reader.read(Severity.self) },
                summary: try reader.readString(), receivedAtMilliseconds: try reader.readInt64())
        }
        let entryCount = try readCount()
        guard entryCount <= IncidentFolder.maxHistoryEntries else {
            throw DecodingFailure("a folder with \(entryCount) history entries; at most \(IncidentFolder.maxHistoryEntries) are kept")
        }
        var history: [IncidentFolder.Entry] = []
        for _ in 0..<entryCount {
            history.append(
                IncidentFolder.Entry(
                    eventNumber: try read { (reader) throws(DecodingFailure) in try reader.readUInt64() },
                    action: try read(EventAction.self),
                    severity: try read { (reader) throws(DecodingFailure) in try reader.read(Severity.self) }, summary: try readString(),
                    receivedAtMilliseconds: try readInt64(), outcome: try read(IncidentFolder.Outcome.self)))
        }
        return IncidentFolder(
            key: key, state: state, source: source, summary: summary, severity: severity, firstSeenAtMilliseconds: firstSeen,
            lastSeenAtMilliseconds: lastSeen, counts: counts,
            lastForwardedTrigger: forwarded, history: history, droppedEntries: try readInt(), sequence: try readUInt64(),
            // A folder stored before webhooks ends here.
            pagerDuty: isAtEnd ? nil : try read { (reader) throws(DecodingFailure) in try reader.readPagerDutyView() })
    }

    public mutating func readPagerDutyView() throws(DecodingFailure) -> PagerDutyView {
        PagerDutyView(
            webhookID: try readString(), status: try read(PagerDutyView.Status.self),
            by: try read { (reader) throws(DecodingFailure) in try reader.readString() }, occurredAtMilliseconds: try readInt64(),
            incidentID: try readString())
    }

    public mutating func readDedupEntry() throws(DecodingFailure) -> DedupEntry {
        DedupEntry(
            key: try readOrderingKey(), lastNumber: try readUInt64(), lastAction: try read(EventAction.self),
            lastFingerprint: try readBytes(), lastAcceptedAtMilliseconds: try readInt64(), keyWasAssigned: try readBool())
    }
}

extension RelayCommand {
    public var encoded: [UInt8] {
        var writer = ByteWriter()
        writer.write(self)
        return writer.bytes
    }

    public init(encoded: [UInt8]) throws(DecodingFailure) {
        var reader = ByteReader(encoded)
        self = try reader.readCommand()
        guard reader.isAtEnd else { throw DecodingFailure("trailing bytes after a command") }
    }
}

/// A value the store keeps as one blob in the binary encoding, written whole on each change.
public protocol BinaryBlob {
    /// For errors: "a folder", "a heartbeat".
    static var blobName: String { get }
    func write(to writer: inout ByteWriter)
    init(from reader: inout ByteReader) throws(DecodingFailure)
}

extension BinaryBlob {
    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 256)
        write(to: &writer)
        return writer.bytes
    }

    public init(encoded: [UInt8]) throws(DecodingFailure) {
        var reader = ByteReader(encoded)
        self = try Self(from: &reader)
        guard reader.isAtEnd else { throw DecodingFailure("trailing bytes after \(Self.blobName)") }
    }
}

extension IncidentFolder: BinaryBlob {
    public static let blobName = "an incident folder"
    public func write(to writer: inout ByteWriter) { writer.write(self) }
    public init(from reader: inout ByteReader) throws(DecodingFailure) { self = try reader.readFolder() }
}

extension MaintenanceWindow: BinaryBlob {
    public static let blobName = "a maintenance window"
    public func write(to writer: inout ByteWriter) { writer.write(self) }
    public init(from reader: inout ByteReader) throws(DecodingFailure) { self = try reader.readWindow() }
}

extension HeldEvent: BinaryBlob {
    public static let blobName = "a held event"
    public func write(to writer: inout ByteWriter) { writer.write(self) }
    public init(from reader: inout ByteReader) throws(DecodingFailure) { self = try reader.readHeldEvent() }
}

extension Heartbeat: BinaryBlob {
    public static let blobName = "a heartbeat"
    public func write(to writer: inout ByteWriter) { writer.write(self) }
    public init(from reader: inout ByteReader) throws(DecodingFailure) { self = try reader.readHeartbeat() }
}

extension Digest: BinaryBlob {
    public static let blobName = "a digest"
    public func write(to writer: inout ByteWriter) { writer.write(self) }
    public init(from reader: inout ByteReader) throws(DecodingFailure) { self = try reader.readDigest() }
}
