import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// An HTTP answer from a relay (or from PagerDuty: the wire format is the same).
public struct RelayResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var retryAfter: String?

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object, or nil.
    public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }

    /// PagerDuty's error text: `message` and `errors`, as `pd-send` prints it.
    public var errorText: String {
        guard let json else { return text.isEmpty ? "HTTP \(status)" : text }
        let message = json["message"] as? String ?? json["status"] as? String ?? "HTTP \(status)"
        let errors = (json["errors"] as? [String]) ?? []
        return errors.isEmpty ? message : "\(message): \(errors.joined(separator: "; "))"
    }
}

/// A small client for a relay's HTTP API, used by `pd-send`, `pdrelay queue` and the load test.
public final class RelayClient: Sendable {
    public let baseURL: String
    private let adminToken: String?
    private let timeout: TimeAmount
    private let httpClient: HTTPClient
    private let shutDown = NIOLockedValueBox(false)

    /// `connectTimeoutMilliseconds` bounds connecting and waiting for a pooled connection; by
    /// default the request timeout, at most 5 s, so that a command line fails fast when no relay
    /// listens.
    public init(
        baseURL: String, adminToken: String? = nil, timeoutMilliseconds: Int64 = 10_000, connectTimeoutMilliseconds: Int64? = nil,
        maxConnections: Int = 8
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.adminToken = adminToken
        self.timeout = .milliseconds(timeoutMilliseconds)
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        configuration.timeout = .init(connect: .milliseconds(connectTimeoutMilliseconds ?? min(timeoutMilliseconds, 5_000)))
        httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// `headers` go with the request as they are (a webhook's signature, say).
    public func post(_ path: String, json body: [UInt8], contentType: String = "application/json", headers: [(String, String)] = [])
        async throws -> RelayResponse
    {
        try await send(.POST, path, body: body, contentType: contentType, headers: headers)
    }

    public func put(_ path: String, json body: [UInt8]) async throws -> RelayResponse {
        try await send(.PUT, path, body: body)
    }

    public func patch(_ path: String, json body: [UInt8]) async throws -> RelayResponse {
        try await send(.PATCH, path, body: body)
    }

    public func delete(_ path: String) async throws -> RelayResponse {
        try await send(.DELETE, path, body: nil)
    }

    private func send(
        _ method: NIOHTTP1.HTTPMethod, _ path: String, body: [UInt8]?, contentType: String = "application/json",
        headers: [(String, String)] = []
    ) async throws -> RelayResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return try await execute(request)
    }

    public func get(_ path: String) async throws -> RelayResponse {
        try await execute(HTTPClientRequest(url: baseURL + path))
    }

    /// A GET to another base URL over this client's connections (probing several nodes).
    public func get(_ otherBaseURL: String, path: String) async throws -> RelayResponse {
        try await execute(HTTPClientRequest(url: otherBaseURL + path))
    }

    private func execute(_ request: HTTPClientRequest) async throws -> RelayResponse {
        var request = request
        request.headers.add(name: "User-Agent", value: "pdrelay-client")
        if let adminToken { request.headers.add(name: "Authorization", value: "Bearer \(adminToken)") }
        let response = try await httpClient.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: 64 * 1_024 * 1_024)
        return RelayResponse(
            status: Int(response.status.code), body: Array(body.readableBytesView), retryAfter: response.headers.first(name: "Retry-After"))
    }

    public func shutdown() async throws {
        guard
            shutDown.withLockedValue({ flag in
                defer { flag = true }; return !flag
            })
        else { return }
        try await httpClient.shutdown()
    }

    /// A client dropped without `shutdown` (an error thrown between its creation and its
    /// shutdown) is shut down here, in the background: AsyncHTTPClient would otherwise stop the
    /// whole process in its own deinit. The shutdown holds the HTTP client until it is done.
    deinit {
        if !shutDown.withLockedValue({ $0 }) { _ = httpClient.shutdown() }
    }

    /// Runs `body` with a client and always shuts the client down.
    public static func with<T>(
        baseURL: String, adminToken: String? = nil, timeoutMilliseconds: Int64 = 10_000, connectTimeoutMilliseconds: Int64? = nil,
        _ body: (RelayClient) async throws -> T
    ) async throws -> T {
        let client = RelayClient(
            baseURL: baseURL, adminToken: adminToken, timeoutMilliseconds: timeoutMilliseconds,
            connectTimeoutMilliseconds: connectTimeoutMilliseconds)
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}
