import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// The certificate and key of the HTTPS listener for clients (`tls_certificate_file`,
/// `tls_key_file`), reloadable: each new handshake asks for the current pair
/// (`sslContextCallback`), so a SIGHUP after a renewal reaches new connections while open ones
/// keep the session they negotiated. A reload that fails (a half-written file, a key that does
/// not match) keeps the pair in use and says why.
final class IngestTLS: Sendable {
    private struct Pair: Sendable {
        let chain: [NIOSSLCertificateSource]
        let key: NIOSSLPrivateKeySource
        /// The leaf's serial number and expiry, for the log line that confirms a reload.
        let description: String
    }

    let certificateFile: String
    let keyFile: String
    private let current: NIOLockedValueBox<Pair>

    init(certificateFile: String, keyFile: String) throws {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        current = NIOLockedValueBox(try Self.load(certificateFile: certificateFile, keyFile: keyFile))
    }

    /// TLS 1.2 or later, with the pair read at the time of each handshake.
    func serverConfiguration() -> TLSConfiguration {
        let pair = current.withLockedValue { $0 }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: pair.chain, privateKey: pair.key)
        tls.minimumTLSVersion = .tlsv12
        tls.sslContextCallback = { [current] _, promise in
            let pair = current.withLockedValue { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = pair.chain
            override.privateKey = pair.key
            promise.succeed(override)
        }
        return tls
    }

    /// Reads both files again; returns what is now served, or throws and keeps the old pair.
    @discardableResult
    func reload() throws -> String {
        let pair = try Self.load(certificateFile: certificateFile, keyFile: keyFile)
        current.withLockedValue { $0 = pair }
        return pair.description
    }

    var servedCertificate: String { current.withLockedValue { $0.description } }

    private static func load(certificateFile: String, keyFile: String) throws -> Pair {
        try RelayConfiguration.requireOwnerOnly(keyFile, holding: ["a TLS private key"])
        let certificates = try NIOSSLCertificate.fromPEMFile(certificateFile)
        guard let leaf = certificates.first else { throw IngestTLSFailure("\(certificateFile) holds no certificate") }
        let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        let chain = certificates.map { NIOSSLCertificateSource.certificate($0) }
        // A key that does not belong to the certificate would fail every handshake: building a
        // context checks the pair, so refuse it now.
        do {
            _ = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
        } catch {
            throw IngestTLSFailure("the key in \(keyFile) does not fit the certificate in \(certificateFile): \(error)")
        }
        let serial = leaf.serialNumber.map { String($0, radix: 16) }.joined()
        return Pair(
            chain: chain, key: .privateKey(key),
            description: "serial \(serial), expires \(leaf.notValidAfter) (unix time)")
    }
}

struct IngestTLSFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
