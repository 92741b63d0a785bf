import ClusterCore
import Logging
import NIOConcurrencyHelpers

/// The node's `ClockSkewWatch`, shared by the peer listener, the peer client and the upstream
/// client, each of which measures a clock; it logs the watch's warnings and keeps the metric.
final class ClockSkewMonitor: Sendable {
    private let watch: NIOLockedValueBox<ClockSkewWatch>
    private let environment: NodeEnvironment
    private let metrics: NodeMetrics
    private let logger: Logger

    init(boundMilliseconds: Int64, environment: NodeEnvironment, metrics: NodeMetrics, logger: Logger) {
        watch = NIOLockedValueBox(ClockSkewWatch(boundMilliseconds: boundMilliseconds))
        self.environment = environment
        self.metrics = metrics
        self.logger = logger
    }

    var boundMilliseconds: Int64 { watch.withLockedValue { $0.boundMilliseconds } }

    /// `skewMilliseconds`: the other clock minus this node's.
    func record(_ source: ClockSkewWatch.Source, skewMilliseconds: Int64) {
        let now = environment.monotonicMilliseconds()
        let warning = watch.withLockedValue { $0.record(source, skewMilliseconds: skewMilliseconds, now: now) }
        metrics.clockSkew(source.label, milliseconds: skewMilliseconds)
        if let warning { logger.warning("\(warning)") }
    }

    /// A peer's timestamp seen on a request it sent at `sentAtMilliseconds` (its clock), read
    /// here at `receivedAtMilliseconds` (this node's). The transit time counts as skew, which
    /// errs by milliseconds against a bound of seconds.
    func recordRequest(from peer: NodeID, sentAtMilliseconds: Int64, receivedAtMilliseconds: Int64) {
        record(.peer(peer), skewMilliseconds: sentAtMilliseconds - receivedAtMilliseconds)
    }

    /// A clock read by the other side between `sentAt` and `receivedAt` (this node's clock):
    /// compared with the middle of the round trip.
    func recordAnswer(from source: ClockSkewWatch.Source, theirMilliseconds: Int64, sentAt: Int64, receivedAt: Int64) {
        record(source, skewMilliseconds: theirMilliseconds - (sentAt + receivedAt) / 2)
    }

    func problems() -> [String] {
        let now = environment.monotonicMilliseconds()
        return watch.withLockedValue { $0.problems(now: now) }
    }

    /// The latest measurement of each source, for `/v1/cluster`.
    func measurements() -> [(source: ClockSkewWatch.Source, skewMilliseconds: Int64)] {
        watch.withLockedValue { $0.latest }.map { ($0.key, $0.value.skewMilliseconds) }.sorted { $0.source.label < $1.source.label }
    }
}
