import NIOSSL

/// Mutual TLS for the peer links, when `peer_tls_*` are set: each side presents a certificate
/// signed by the cluster's CA and accepts only such certificates. Hostnames are not checked
/// (nodes are often addressed by IP); which node is speaking is what the HMAC signature says.
enum PeerTLS {
    static func serverConfiguration(_ configuration: RelayConfiguration) throws -> TLSConfiguration? {
        guard let files = files(configuration) else { return nil }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(files.certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: files.key, format: .pem)))
        tls.trustRoots = .file(files.ca)
        // A server that verifies certificates requires one from every client.
        tls.certificateVerification = .noHostnameVerification
        return tls
    }

    static func clientConfiguration(_ configuration: RelayConfiguration) throws -> TLSConfiguration? {
        guard let files = files(configuration) else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(files.certificate).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: files.key, format: .pem))
        tls.trustRoots = .file(files.ca)
        tls.certificateVerification = .noHostnameVerification
        return tls
    }

    private static func files(_ configuration: RelayConfiguration) -> (certificate: String, key: String, ca: String)? {
        guard let certificate = configuration.peerTLSCertificateFile, let key = configuration.peerTLSKeyFile,
            let ca = configuration.peerTLSCAFile
        else { return nil }
        return (certificate, key, ca)
    }
}
