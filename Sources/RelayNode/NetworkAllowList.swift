import Foundation
import RelayCore

#if canImport(Glibc)
    import Glibc
#endif

/// The source networks webhooks may come from: one address or CIDR block per line (IPv4 or
/// IPv6), `#` comments, as PagerDuty publishes its safelists
/// (`developer.pagerduty.com/ip-safelists/webhooks-us-service-region`, `…-eu-…`).
struct NetworkAllowList: Sendable, Equatable {
    struct Network: Sendable, Equatable {
        let address: [UInt8]
        let prefixLength: Int

        func contains(_ candidate: [UInt8]) -> Bool {
            guard candidate.count == address.count else { return false }
            var remaining = prefixLength
            for (a, b) in zip(address, candidate) where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if a & mask != b & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    let networks: [Network]
    static let maxNetworks = 10_000

    init(text: String, source: String) throws(ConfigurationError) {
        var networks: [Network] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line =
                rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?
                .trimmingCharacters(in: .whitespaces) ?? ""
            if line.isEmpty { continue }
            guard let network = Self.network(line) else {
                throw ConfigurationError("\(source) line \(number + 1): '\(line.prefix(60))' is not an address or CIDR block")
            }
            networks.append(network)
            guard networks.count <= Self.maxNetworks else {
                throw ConfigurationError("\(source) lists more than \(Self.maxNetworks) networks")
            }
        }
        self.networks = networks
    }

    func allows(_ address: String) -> Bool {
        guard let bytes = Self.bytes(address) else { return false }
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let candidates =
            bytes.count == 16 && bytes.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF])
            ? [bytes, Array(bytes.suffix(4))] : [bytes]
        return networks.contains { network in candidates.contains(where: network.contains) }
    }

    static func network(_ text: String) -> Network? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = bytes(String(parts[0])) else { return nil }
        let maxLength = address.count * 8
        guard let prefixLength = parts.count == 2 ? Int(parts[1]) : maxLength, (0...maxLength).contains(prefixLength) else { return nil }
        return Network(address: address, prefixLength: prefixLength)
    }

    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
