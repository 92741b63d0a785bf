import ClusterCore
import Metrics
import NIOConcurrencyHelpers
import Prometheus
import RelayCore

/// The node's metrics, in its own Prometheus registry (so several nodes can run in one test
/// process) and exposed at `/metrics`.
final class NodeMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// The last ten minutes of deliveries, for `/v1/status`.
    let recent = NIOLockedValueBox(RecentActivity())

    // The handles the data path records into, each made once: making one is a lookup in the
    // registry under its lock, with the label checked and hashed, and the engine records the
    // queue's depth after every batch of actions.
    private let deliveredTotal: Metrics.Counter
    private let retriedTotal: Metrics.Counter
    private let deadLetteredTotal: Metrics.Counter
    private let deliveryLatency: Metrics.Timer
    private let upstreamRequestTime: Metrics.Timer
    private let upstreamInFlightGauge: Metrics.Gauge
    private let pendingDepth: Metrics.Gauge
    private let deadDepth: Metrics.Gauge
    private let commitBatchEvents: Metrics.Recorder
    private let storeWriteTime: Metrics.Timer

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(10), .seconds(60), .seconds(300), .seconds(1_800),
        ]
        self.factory = factory
        deliveredTotal = Counter(label: "pdrelay_events_delivered_total", factory: factory)
        retriedTotal = Counter(label: "pdrelay_events_retried_total", factory: factory)
        deadLetteredTotal = Counter(label: "pdrelay_events_dead_lettered_total", factory: factory)
        deliveryLatency = Timer(label: "pdrelay_delivery_latency_seconds", factory: factory)
        upstreamRequestTime = Timer(label: "pdrelay_upstream_request_seconds", factory: factory)
        upstreamInFlightGauge = Gauge(label: "pdrelay_upstream_in_flight", factory: factory)
        pendingDepth = Gauge(label: "pdrelay_queue_depth", dimensions: [("state", "pending")], factory: factory)
        deadDepth = Gauge(label: "pdrelay_queue_depth", dimensions: [("state", "dead")], factory: factory)
        commitBatchEvents = Recorder(label: "pdrelay_store_commit_batch_events", factory: factory)
        storeWriteTime = Timer(label: "pdrelay_store_write_seconds", factory: factory)
    }

    func accepted(_ api: IngestAPI, _ result: String) {
        Counter(label: "pdrelay_events_accepted_total", dimensions: [("api", api.rawValue), ("result", result)], factory: factory)
            .increment()
    }

    /// `reason`: invalid_event, unrecognized_object, queue_full, too_large, unsupported_media_type, unavailable.
    func rejected(_ reason: String) {
        Counter(label: "pdrelay_events_rejected_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    /// `problem`: what went wrong, in the words of the log line, for the recent problems.
    func attempt(_ attempt: AttemptRecord, latencyMilliseconds: Int64, problem: String?) {
        let outcome = attempt.outcome
        let statusCode = attempt.statusCode
        recent.withLockedValue { $0.record(attempt, latencyMilliseconds: latencyMilliseconds, problem: problem) }
        switch outcome {
        case .delivered: deliveredTotal.increment()
        case .retry: retriedTotal.increment()
        case .deadLettered: deadLetteredTotal.increment()
        }
        Counter(label: "pdrelay_upstream_responses_total", dimensions: [("code", statusCode.map(String.init) ?? "none")], factory: factory)
            .increment()
        if outcome == .delivered { deliveryLatency.recordMilliseconds(max(latencyMilliseconds, 0)) }
    }

    /// Every upstream request's time, whatever its outcome: a slow PagerDuty (or proxy) shows here
    /// first, and as `pdrelay_upstream_in_flight` at `delivery_concurrency`.
    func upstreamRequest(durationMilliseconds: Int64) {
        upstreamRequestTime.recordMilliseconds(max(durationMilliseconds, 0))
    }

    func upstreamInFlight(_ count: Int) {
        upstreamInFlightGauge.record(count)
    }

    func queueDepth(pending: Int, dead: Int) {
        pendingDepth.record(pending)
        deadDepth.record(dead)
    }

    /// `durationMilliseconds`: the synced transaction's time. A leader whose writes run past the
    /// minimum election timeout stops its heartbeats (`diskStallToleranceMilliseconds`).
    func commit(batchSize: Int, durationMilliseconds: Int64) {
        commitBatchEvents.record(batchSize)
        storeWriteTime.recordMilliseconds(max(durationMilliseconds, 0))
    }

    func role(_ role: Role) {
        for candidate in [Role.follower, .preCandidate, .candidate, .leader] {
            Gauge(label: "pdrelay_cluster_role", dimensions: [("role", candidate.rawValue)], factory: factory).record(
                candidate == role ? 1 : 0)
        }
    }

    /// `result`: sent, failed, dropped (the outbox was full).
    func peerMessages(_ count: Int, peer: Int, result: String) {
        Counter(label: "pdrelay_peer_messages_total", dimensions: [("peer", String(peer)), ("result", result)], factory: factory)
            .increment(by: count)
    }

    /// A peer stream connected ("established") or ended ("closed").
    func peerConnection(peer: Int, event: String) {
        Counter(label: "pdrelay_peer_connections_total", dimensions: [("peer", String(peer)), ("event", event)], factory: factory)
            .increment()
    }

    /// A peer connection refused, or closed for silence, by reason (`PeerStreamRefusal.Reason`).
    func peerStreamRefused(_ reason: String) {
        Counter(label: "pdrelay_peer_stream_refusals_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    func render() -> [UInt8] { registry.emitToBuffer() }
}

extension NodeMetrics {
    /// `pdrelay_clock_skew_seconds{source="node-2"|"upstream"}`: that clock minus this node's.
    func clockSkew(_ source: String, milliseconds: Int64) {
        Gauge(label: "pdrelay_clock_skew_seconds", dimensions: [("source", source)], factory: factory)
            .record(Double(milliseconds) / 1_000)
    }
}

extension NodeMetrics {
    /// `outcome`: event (durable), unmatched, unmappable, malformed, bad_community, queue_full
    /// and unavailable (a UDP message lost, or a TCP one retried: UDP cannot push back),
    /// overflow (a datagram lost to a full backlog), invalid_event.
    func gateway(_ gateway: String, _ outcome: String) {
        Counter(label: "pdrelay_gateway_messages_total", dimensions: [("gateway", gateway), ("outcome", outcome)], factory: factory)
            .increment()
    }
}

extension NodeMetrics {
    /// `outcome`: applied, duplicate, stale, no_folder, ignored (not an incident status change),
    /// forbidden, bad_signature, malformed, unavailable.
    func webhook(_ outcome: String) {
        Counter(label: "pdrelay_webhooks_total", dimensions: [("outcome", outcome)], factory: factory).increment()
    }
}
