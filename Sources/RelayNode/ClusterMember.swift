import ClusterCore
import Foundation
import RelayCore

/// One node of the static membership: its id and the URL its peers reach it at.
public struct ClusterMember: Sendable, Equatable {
    public let id: NodeID
    public let url: String

    public init(id: NodeID, url: String) {
        self.id = id
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// The URL's host and port: where the peer stream dials (`parse` checked both are there).
    var address: (host: String, port: Int) {
        get throws(ConfigurationError) {
            guard let url = URL(string: url), let host = url.host, let port = url.port else {
                throw ConfigurationError("peers entry \(id)=\(url) has no host and port")
            }
            return (host, port)
        }
    }

    /// `1=http://10.0.1.5:9091,2=http://10.0.2.5:9091,...`
    static func parse(_ text: String) throws(ConfigurationError) -> [ClusterMember] {
        var members: [ClusterMember] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let id = Int(parts[0]), id > 0, let url = URL(string: parts[1]),
                ["http", "https"].contains(url.scheme ?? ""), url.host != nil, url.port != nil
            else {
                throw ConfigurationError(
                    "peers entry '\(item)' must look like 2=http://10.0.2.5:9091 (a positive id, an http(s) URL with a port)")
            }
            members.append(ClusterMember(id: id, url: parts[1]))
        }
        return members.sorted { $0.id < $1.id }
    }
}
