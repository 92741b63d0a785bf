import Crypto

/// PagerDuty's v3 webhook signature: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]`, one per
/// active secret of the subscription, each the HMAC-SHA256 of the raw body keyed with the
/// secret's bytes as they are written. A delivery is genuine when any `v1` signature matches any
/// of our secrets (two during a rotation); each comparison takes constant time.
public enum WebhookSignature {
    /// More than this many signatures in one header is not PagerDuty (it sends one per secret).
    public static let maxSignatures = 8

    public static func isValid(body: [UInt8], header: String?, secrets: [String]) -> Bool {
        guard let header, header.utf8.count <= 1_024 else { return false }
        let signatures = header.split(separator: ",").map { $0.trimmingSpaces() }.filter { $0.hasPrefix("v1=") }.prefix(maxSignatures)
            .compactMap { hexBytes($0.dropFirst(3)) }
        guard !signatures.isEmpty else { return false }
        var valid = false
        for secret in secrets where !secret.isEmpty {
            let key = SymmetricKey(data: Array(secret.utf8))
            for signature in signatures where HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: body, using: key) {
                valid = true
            }
        }
        return valid
    }

    /// The signature PagerDuty would send for `body` with `secret`: for tests and tools.
    public static func sign(body: [UInt8], secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        return "v1=" + code.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    static func hexBytes(_ text: Substring) -> [UInt8]? {
        guard text.utf8.count == 64 else { return nil }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let h = nibble(high), let l = nibble(low) else { return nil }
            bytes.append(h << 4 | l)
        }
        return bytes
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed().reduce(into: Substring()) { $0.append($1) }
    }
}
