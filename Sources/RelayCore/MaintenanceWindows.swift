import DequeModule

/// An event a maintenance window with `hold` keeps until the window ends.
public struct HeldEvent: Sendable, Equatable {
    public let windowID: UInt64
    /// Order of holding across all windows: release goes in this order.
    public let sequence: UInt64
    public let acceptance: Acceptance

    public init(windowID: UInt64, sequence: UInt64, acceptance: Acceptance) {
        self.windowID = windowID
        self.sequence = sequence
        self.acceptance = acceptance
    }
}

/// The maintenance windows and the events they hold: part of `RelayStateMachine`, kept apart
/// because its rules (which window covers an event, what a change may do, when held events go)
/// are a job of their own. Every method is deterministic in its arguments.
public struct MaintenanceWindows: Sendable {
    public private(set) var windows: [UInt64: MaintenanceWindow] = [:]
    public private(set) var nextWindowID: UInt64 = 1
    /// Held events, oldest first.
    private var held: Deque<HeldEvent> = []
    private var nextHeldSequence: UInt64 = 1
    /// Held events per key, and the window they are in: a key's later events are held behind
    /// them, in the same window, so that its order holds.
    private var heldPerKey: [OrderingKey: (windowID: UInt64, count: Int)] = [:]
    /// Held events per window, for finding the windows due for release without a scan of keys.
    private var heldPerWindow: [UInt64: Int] = [:]

    public init() {}

    public init(windows: [MaintenanceWindow], held: [HeldEvent], nextWindowID: UInt64) {
        for window in windows {
            precondition(window.id < nextWindowID, "window \(window.id) is beyond the next window id \(nextWindowID)")
            self.windows[window.id] = window
        }
        self.nextWindowID = nextWindowID
        for event in held.sorted(by: { $0.sequence < $1.sequence }) {
            precondition(self.windows[event.windowID] != nil, "a held event of window \(event.windowID), which does not exist")
            append(event)
        }
    }

    public var heldCount: Int { held.count }
    public var allHeld: [HeldEvent] { Array(held) }
    public var sortedWindows: [MaintenanceWindow] { windows.values.sorted { $0.id < $1.id } }

    /// Events window `id` holds now.
    public func holding(in id: UInt64) -> Int { heldPerWindow[id] ?? 0 }

    /// The window whose held events `key` must wait behind, if any.
    public func holdingWindow(of key: OrderingKey) -> UInt64? { heldPerKey[key]?.windowID }

    /// The oldest active window over an event of `key` from `source`, received at `time`.
    public func activeWindow(for key: OrderingKey, source: String?, at time: Int64) -> MaintenanceWindow? {
        windows.values.filter { $0.isActive(atMilliseconds: time) && $0.covers(routingKey: key.routingKey, source: source) }
            .min { $0.id < $1.id }
    }

    /// A held event with these bytes received within `window` of `time`: a client's retry of it.
    public func heldRetry(of fingerprint: [UInt8], at time: Int64, within window: Int64) -> HeldEvent? {
        held.last { $0.acceptance.fingerprint == fingerprint && time - $0.acceptance.receivedAtMilliseconds <= window }
    }

    /// Whether any window with held events ended by `time`.
    public func hasHeldEventsDue(at time: Int64) -> Bool {
        heldPerWindow.keys.contains { windows[$0]!.hasEnded(atMilliseconds: time) }
    }

    // MARK: changes

    public mutating func open(_ spec: MaintenanceWindow.Spec, at time: Int64, effects: inout RelayStateMachine.Effects) -> Result<
        MaintenanceWindow, OperatorError
    > {
        prune(at: time, effects: &effects)
        do {
            try spec.validate(atMilliseconds: time)
        } catch {
            return .failure(error)
        }
        guard windows.count < MaintenanceWindow.maxWindows else {
            return .failure(OperatorError("there are already \(MaintenanceWindow.maxWindows) windows; end some first"))
        }
        let window = MaintenanceWindow(id: nextWindowID, spec: spec, createdAtMilliseconds: time)
        nextWindowID += 1
        windows[window.id] = window
        effects.mutations.append(.putWindow(window))
        effects.mutations.append(.setNextWindowID(nextWindowID))
        return .success(window)
    }

    /// Changes a window that has not ended. Returns the window and the events to release now
    /// (all it held, if the change ends it or turns `hold` off).
    public mutating func change(
        _ id: UInt64, _ change: MaintenanceWindow.Change, at time: Int64, effects: inout RelayStateMachine.Effects
    ) -> Result<(MaintenanceWindow, [HeldEvent]), OperatorError> {
        guard var window = windows[id] else { return .failure(OperatorError("no maintenance window \(id)", kind: .unknown)) }
        guard !window.hasEnded(atMilliseconds: time) else {
            return .failure(OperatorError("maintenance window \(id) has ended; start a new one", kind: .conflict))
        }
        let spec = change.applied(to: window.spec)
        do {
            try spec.validate(atMilliseconds: time)
        } catch {
            return .failure(error)
        }
        window.replace(spec)
        windows[id] = window
        effects.mutations.append(.putWindow(window))
        let released = spec.hold ? [] : release(window: id, effects: &effects)
        return .success((window, released))
    }

    /// Ends a window now: it stays listed as ended, and its held events are released.
    public mutating func end(_ id: UInt64, at time: Int64, effects: inout RelayStateMachine.Effects) -> Result<
        (MaintenanceWindow, [HeldEvent]), OperatorError
    > {
        guard var window = windows[id] else { return .failure(OperatorError("no maintenance window \(id)", kind: .unknown)) }
        if !window.hasEnded(atMilliseconds: time) {
            // A window not yet started ends too: it becomes one that ended now, never active.
            var spec = window.spec
            spec.endsAtMilliseconds = time
            spec.startsAtMilliseconds = min(spec.startsAtMilliseconds, time - 1)
            window.replace(spec)
            windows[id] = window
            effects.mutations.append(.putWindow(window))
        }
        return .success((window, release(window: id, effects: &effects)))
    }

    /// Releases the held events of every window that ended by `time`, oldest first.
    public mutating func releaseDue(at time: Int64, effects: inout RelayStateMachine.Effects) -> [HeldEvent] {
        guard hasHeldEventsDue(at: time) else { return [] }
        let due = Set(heldPerWindow.keys.filter { windows[$0]!.hasEnded(atMilliseconds: time) })
        return take(where: { due.contains($0.windowID) }, effects: &effects)
    }

    /// Keeps `acceptance` in window `id` until it ends.
    public mutating func hold(_ acceptance: Acceptance, in id: UInt64, effects: inout RelayStateMachine.Effects) {
        precondition(windows[id]?.spec.hold == true, "an event was held in window \(id), which does not hold")
        let event = HeldEvent(windowID: id, sequence: nextHeldSequence, acceptance: acceptance)
        append(event)
        windows[id]!.heldCount += 1
        effects.mutations.append(.putHeld(event))
        effects.mutations.append(.putWindow(windows[id]!))
    }

    public mutating func countSuppressed(in id: UInt64, effects: inout RelayStateMachine.Effects) {
        windows[id]!.suppressedCount += 1
        effects.mutations.append(.putWindow(windows[id]!))
    }

    /// Drops the held events of `key`: a resolve that went through has made them stale (sent
    /// later, a held trigger would re-open what was resolved).
    public mutating func dropHeld(of key: OrderingKey, effects: inout RelayStateMachine.Effects) -> [HeldEvent] {
        guard heldPerKey[key] != nil else { return [] }
        return take(where: { $0.acceptance.key == key }, effects: &effects)
    }

    // MARK: bookkeeping

    private mutating func append(_ event: HeldEvent) {
        held.append(event)
        nextHeldSequence = max(nextHeldSequence, event.sequence + 1)
        let key = event.acceptance.key
        precondition(heldPerKey[key].map { $0.windowID == event.windowID } ?? true, "\(key) has events held in two windows")
        heldPerKey[key] = (event.windowID, (heldPerKey[key]?.count ?? 0) + 1)
        heldPerWindow[event.windowID, default: 0] += 1
    }

    private mutating func release(window id: UInt64, effects: inout RelayStateMachine.Effects) -> [HeldEvent] {
        take(where: { $0.windowID == id }, effects: &effects)
    }

    private mutating func take(where selected: (HeldEvent) -> Bool, effects: inout RelayStateMachine.Effects) -> [HeldEvent] {
        var taken: [HeldEvent] = []
        var kept: Deque<HeldEvent> = []
        for event in held {
            guard selected(event) else {
                kept.append(event)
                continue
            }
            taken.append(event)
            let key = event.acceptance.key
            heldPerKey[key]!.count -= 1
            if heldPerKey[key]!.count == 0 { heldPerKey[key] = nil }
            heldPerWindow[event.windowID]! -= 1
            if heldPerWindow[event.windowID] == 0 { heldPerWindow[event.windowID] = nil }
            effects.mutations.append(.deleteHeld(windowID: event.windowID, sequence: event.sequence))
        }
        held = kept
        return taken
    }

    /// Forgets windows that ended over a day ago and hold nothing.
    private mutating func prune(at time: Int64, effects: inout RelayStateMachine.Effects) {
        let holding = heldPerWindow
        for window in windows.values
        where window.hasEnded(atMilliseconds: time - MaintenanceWindow.keptAfterEndMilliseconds) && holding[window.id] == nil {
            windows[window.id] = nil
            effects.mutations.append(.deleteWindow(window.id))
        }
    }
}
