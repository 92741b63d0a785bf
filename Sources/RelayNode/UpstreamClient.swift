import AsyncHTTPClient
import EngineCore
import Foundation
import NIOCore
import NIOSSL
import RelayCore

/// Sends events to PagerDuty (or whatever `upstream_url` names) over AsyncHTTPClient, with the
/// system CA store plus an optional CA file, and HTTPS_PROXY/NO_PROXY. Every request is cancelled
/// hard at `upstream_timeout_milliseconds`.
final class UpstreamClient: Sendable {
    static let maxDetailBytes = 1_024
    /// How an attempt that got no answer in time is described (`RelayEngine.problem`).
    static let timeoutDetailPrefix = "no answer within"
    private let httpClient: HTTPClient
    private let baseURL: String
    private let timeout: TimeAmount
    /// The node's monotonic clock, for the send deadline.
    private let monotonicMilliseconds: @Sendable () -> Int64
    /// Where the upstream's `Date` header goes, with this node's wall clock around the request.
    private let clockSkew: (monitor: ClockSkewMonitor, wallClockMilliseconds: @Sendable () -> Int64)?

    init(
        configuration: RelayConfiguration, monotonicMilliseconds: @escaping @Sendable () -> Int64,
        clockSkew: (monitor: ClockSkewMonitor, wallClockMilliseconds: @Sendable () -> Int64)? = nil
    ) throws {
        self.monotonicMilliseconds = monotonicMilliseconds
        self.clockSkew = clockSkew
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile = configuration.upstreamCAFile {
            tls.additionalTrustRoots = [.file(caFile)]
        }
        var clientConfiguration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            timeout: .init(connect: .milliseconds(min(configuration.upstreamTimeoutMilliseconds, 5_000))),
            proxy: try Self.proxy(for: configuration))
        // AHC allows 8 connections per host by default; one per concurrent delivery instead.
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.deliveryConcurrency)
        clientConfiguration.redirectConfiguration = .disallow
        // No spans on the delivery path: nothing here exports them, and AHC's cost a few
        // percent of the leader's CPU per event.
        clientConfiguration.tracing.tracer = nil
        httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        baseURL = configuration.upstreamURL.hasSuffix("/") ? String(configuration.upstreamURL.dropLast()) : configuration.upstreamURL
        timeout = .milliseconds(configuration.upstreamTimeoutMilliseconds)
    }

    /// Sends one event; `term` is the leadership term it is sent in, in a header so that a
    /// recording upstream (the tests' mock) can check fencing. PagerDuty ignores it.
    /// `sendByMilliseconds` is the send deadline on the node's monotonic clock: the fencing rule
    /// needs every byte of the event to leave before it (see `DeadlineGuardedBytes`).
    func send(_ event: QueuedEvent, term: UInt64, sendByMilliseconds: Int64) async -> UpstreamResponse {
        var request = HTTPClientRequest(url: baseURL + event.kind.upstreamPath)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "pdrelay/\(RelayVersion.current)")
        request.headers.add(name: "X-PDRelay-Term", value: String(term))
        request.body = .bytes(
            DeadlineGuardedBytes(bytes: event.body, sendByMilliseconds: sendByMilliseconds, now: monotonicMilliseconds),
            length: .known(Int64(event.body.count)))
        let sentAt = clockSkew?.wallClockMilliseconds()
        do {
            let response = try await httpClient.execute(request, timeout: timeout)
            if let clockSkew, let sentAt, let date = response.headers.first(name: "Date").flatMap(HTTPDate.milliseconds) {
                // The header counts whole seconds: compare it with the middle of that second.
                clockSkew.monitor.recordAnswer(
                    from: .upstream, theirMilliseconds: date + 500, sentAt: sentAt, receivedAt: clockSkew.wallClockMilliseconds())
            }
            let body = try await response.body.collect(upTo: 64 * 1_024)
            return UpstreamResponse(
                statusCode: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After"),
                detail: String(decoding: body.readableBytesView.prefix(Self.maxDetailBytes), as: UTF8.self))
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            return UpstreamResponse(statusCode: nil, detail: "\(Self.timeoutDetailPrefix) \(timeout.nanoseconds / 1_000_000) ms")
        } catch let error as HTTPClientError where error == .bodyLengthMismatch && monotonicMilliseconds() >= sendByMilliseconds {
            return UpstreamResponse(statusCode: nil, detail: "not sent: the process was held past the send deadline (paused?)")
        } catch {
            return UpstreamResponse(statusCode: nil, detail: "\(error)".prefix(Self.maxDetailBytes).description)
        }
    }

    func shutdown() async throws {
        try await httpClient.shutdown()
    }

    /// HTTPS_PROXY applies unless NO_PROXY names the upstream host (exactly, as a domain suffix,
    /// or `*`), the convention curl and Go follow.
    static func proxy(for configuration: RelayConfiguration) throws -> HTTPClient.Configuration.Proxy? {
        guard let proxyText = configuration.httpsProxy, !proxyText.isEmpty else { return nil }
        let upstreamHost = URL(string: configuration.upstreamURL)?.host?.lowercased() ?? ""
        let exempt = (configuration.noProxy ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if exempt.contains(where: { $0 == "*" || upstreamHost == $0 || upstreamHost.hasSuffix("." + $0.trimmingPrefix(".")) }) {
            return nil
        }
        guard let proxyURL = URL(string: proxyText.contains("://") ? proxyText : "http://" + proxyText), let host = proxyURL.host else {
            throw ConfigurationError("HTTPS_PROXY '\(proxyText)' is not a URL")
        }
        let authorization = proxyURL.user.map { HTTPClient.Authorization.basic(username: $0, password: proxyURL.password ?? "") }
        return .server(host: host, port: proxyURL.port ?? 8080, authorization: authorization)
    }
}
