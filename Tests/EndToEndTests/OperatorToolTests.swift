import RelayTestSupport
import Testing

/// The operator-facing tests of issue 13 (the clock-skew node, systemd notify, HTTPS ingest, the
/// status page in Chromium, drills, the routing-key log search). Each runs real processes, most
/// a whole cluster; run one at a time, beside the other suites, so the 2-core machine is not
/// drowned and timing-sensitive tests elsewhere keep their margins.
@Suite(.serialized, RelayLoad.cluster) enum OperatorToolTests {}
