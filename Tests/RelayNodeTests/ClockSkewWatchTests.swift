import Testing

@testable import RelayNode

@Suite struct ClockSkewWatchTests {
    @Test func aSkewWithinTheBoundIsRecordedButNamesNoProblem() {
        var watch = ClockSkewWatch(boundMilliseconds: 10_000)
        let peer = watch.record(.peer(2), skewMilliseconds: 9_999, now: 0)
        let upstream = watch.record(.upstream, skewMilliseconds: -9_999, now: 0)
        #expect(peer == nil && upstream == nil)
        #expect(watch.problems(now: 0).isEmpty)
        #expect(watch.latest[.peer(2)]?.skewMilliseconds == 9_999)
    }

    @Test func aSkewBeyondTheBoundWarnsOncePerIntervalAndStaysAProblemWhileFresh() throws {
        var watch = ClockSkewWatch(boundMilliseconds: 10_000)
        let first = watch.record(.upstream, skewMilliseconds: -12_400, now: 0)
        let warning = try #require(first)
        #expect(warning == "clock skew of 12 s with the upstream exceeds 10 s (the upstream's clock is behind this node's)")
        let limited = watch.record(.upstream, skewMilliseconds: -12_400, now: 29_999)
        #expect(limited == nil, "rate-limited")
        let other = watch.record(.peer(3), skewMilliseconds: 15_000, now: 29_999)
        #expect(other != nil, "another source has its own limit")
        let again = watch.record(.upstream, skewMilliseconds: -12_400, now: 30_000)
        #expect(again != nil)
        #expect(watch.problems(now: 30_000).count == 2)
        // A measurement nobody has renewed for two minutes no longer describes the clocks.
        #expect(watch.problems(now: 30_000 + ClockSkewWatch.staleAfterMilliseconds + 1).isEmpty)
    }

    @Test func beyondThePeerSignatureWindowTheLineSaysRequestsAreRefused() throws {
        var watch = ClockSkewWatch(boundMilliseconds: 10_000)
        let refused = watch.record(.peer(3), skewMilliseconds: 3_600_000, now: 0)
        let warning = try #require(refused)
        #expect(warning.hasPrefix("clock skew of 3600 s with node 3 exceeds 60 s (node 3's clock is ahead of this node's)"))
        #expect(warning.contains("refused"))
        // The upstream refuses nothing for skew: its line keeps the configured bound.
        let upstream = watch.record(.upstream, skewMilliseconds: 3_600_000, now: 0)
        #expect(upstream?.contains("exceeds 10 s") == true)
    }

    @Test func theDateHeaderIsReadAsAnIMFFixdate() {
        // RFC 9110's own example.
        #expect(HTTPDate.milliseconds("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777_000)
        #expect(HTTPDate.milliseconds("Thu, 29 Feb 2024 00:00:00 GMT") == 1_709_164_800_000)
        #expect(HTTPDate.milliseconds("Sunday, 06-Nov-94 08:49:37 GMT") == nil)
        #expect(HTTPDate.milliseconds("Sun, 06 Nov 1994 08:49:37 CET") == nil)
        #expect(HTTPDate.milliseconds("Sun, 06 Foo 1994 08:49:37 GMT") == nil)
        #expect(HTTPDate.milliseconds("") == nil)
    }

    @Test func theNotifierReadsSystemdsEnvironment() throws {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]) == nil)
        let abstract = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": "@systemd-notify"]))
        #expect(abstract.watchdogPingMilliseconds == nil)
        let watched = try #require(
            SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"], processID: 42))
        #expect(watched.watchdogPingMilliseconds == 15_000)
        // The watchdog watches another process (a parent): this one must not ping for it.
        let other = try #require(
            SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"], processID: 42))
        #expect(other.watchdogPingMilliseconds == nil)
    }
}
