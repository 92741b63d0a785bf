import Foundation
import Testing

/// A trait saying how many relay nodes a test runs (in this process or as child processes), so
/// that the tests of a run share the machine instead of fighting over it.
///
/// Swift Testing starts every suite at once. On a 2-core machine that is a dozen clusters, each
/// of three nodes and an HAProxy, all starting together: a node's timers then fire seconds late,
/// a 400 ms wait measures 6 s, and a 10 s request deadline passes while nothing is wrong. A test
/// that runs nodes takes `weight` permits from one gate for the whole process before it starts,
/// and gives them back when it ends; its own timing is measured only once it holds them.
/// `TestNode.run` and `ClusterRig.run` check that they run under one (`RelayLoad.isHeld`), so a
/// new suite cannot forget it.
public struct RelayLoad: SuiteTrait, TestTrait, TestScoping {
    public let weight: Int

    /// One node: an in-process `TestNode`, or one `pdrelay` process.
    public static let node = RelayLoad(weight: 1)
    /// Several nodes, or a node with another heavy process beside it (a load generator).
    public static func nodes(_ count: Int) -> RelayLoad { RelayLoad(weight: count) }
    /// Three `pdrelay` processes behind HAProxy.
    public static let cluster = RelayLoad(weight: 3)

    public var isRecursive: Bool { true }

    /// Each test case takes its permits; a suite only passes the trait on.
    public func scopeProvider(for test: Test, testCase: Test.Case?) -> RelayLoad? {
        test.isSuite || testCase == nil ? nil : self
    }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // A test marked both itself and through its suite holds one grant, not two.
        if Self.isHeld { return try await function() }
        let weight = min(weight, LoadGate.shared.capacity)
        await LoadGate.shared.acquire(weight)
        defer { Task { await LoadGate.shared.release(weight) } }
        try await Self.$isHeld.withValue(true) { try await function() }
    }

    /// Whether the current task runs under a `RelayLoad` grant.
    @TaskLocal public static var isHeld = false
}

/// Permits, handed out first come first served: a cluster waiting for three is not overtaken
/// forever by single nodes that each fit.
actor LoadGate {
    /// Three permits per core (a node mostly waits on timers, the disk and its peers), at least
    /// one cluster's worth; `PDRELAY_TEST_LOAD_PERMITS` overrides it.
    static let shared = LoadGate(
        capacity: ProcessInfo.processInfo.environment["PDRELAY_TEST_LOAD_PERMITS"].flatMap(Int.init)
            ?? max(3, 3 * ProcessInfo.processInfo.activeProcessorCount))

    nonisolated let capacity: Int
    private var inUse = 0
    private var waiting: [(weight: Int, continuation: CheckedContinuation<Void, Never>)] = []

    init(capacity: Int) {
        precondition(capacity > 0, "the test load gate needs at least one permit")
        self.capacity = capacity
    }

    func acquire(_ weight: Int) async {
        precondition(weight > 0 && weight <= capacity, "a test asks for \(weight) of \(capacity) permits")
        if waiting.isEmpty && inUse + weight <= capacity {
            inUse += weight
            return
        }
        await withCheckedContinuation { waiting.append((weight, $0)) }
    }

    func release(_ weight: Int) {
        inUse -= weight
        precondition(inUse >= 0, "more permits released than taken")
        while let first = waiting.first, inUse + first.weight <= capacity {
            waiting.removeFirst()
            inUse += first.weight
            first.continuation.resume()
        }
    }
}
