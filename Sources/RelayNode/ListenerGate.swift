import NIOConcurrencyHelpers

/// Holds the engine back until every listener of the node is bound. A node that cannot bind its
/// port must fail before it campaigns, leads or delivers anything: otherwise it would take a
/// term and deliver the queue, then exit (or hang) for want of a port. It also keeps the client
/// listener's port, announced (`RelayNode.makeServices`' `onListening`) once all are bound.
struct ListenerGate: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let listeners: Int
    private let boundClientPort = NIOLockedValueBox<Int?>(nil)

    init(listeners: Int) {
        precondition(listeners > 0, "a node has at least its client listener")
        (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        self.listeners = listeners
    }

    /// One listener is bound.
    func opened() { continuation.yield() }

    /// The client listener is bound, on `port`.
    func openedClientListener(port: Int) {
        boundClientPort.withLockedValue { $0 = port }
        opened()
    }

    /// The client listener's port, once it is bound.
    var clientPort: Int? { boundClientPort.withLockedValue { $0 } }

    /// Returns true once every listener is bound, false if the task was cancelled first (a
    /// listener failed and the node is shutting down).
    func waitUntilAllOpen() async -> Bool {
        var open = 0
        for await _ in stream {
            open += 1
            if open == listeners { return true }
        }
        return false
    }
}
