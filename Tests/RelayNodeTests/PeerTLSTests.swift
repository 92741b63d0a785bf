import AsyncHTTPClient
import ClusterCore
import Foundation
import NIOCore
import NIOSSL
import RelayCore
import RelayProcess
import RelayTestSupport
import Testing

@testable import RelayNode

/// With `peer_tls_*` set, the peer listener speaks only TLS and only to clients that present a
/// certificate signed by the cluster's CA; such a client still needs a valid HMAC signature.
@Suite(.serialized, RelayLoad.node) struct PeerTLSTests {
    static let secret = "0123456789abcdef0123456789abcdef-tls"

    struct Files {
        let directory: String
        var ca: String { directory + "/ca.pem" }
        func certificate(_ name: String) -> String { directory + "/\(name).pem" }
        func key(_ name: String) -> String { directory + "/\(name).key" }
    }

    /// A CA, a node certificate it signed, and an outsider's self-signed one, made with openssl.
    static func makeFiles() async throws -> Files {
        let files = Files(directory: TestSupport.temporaryDirectory("peer-tls"))
        let d = files.directory
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: d + "/san.ext", atomically: true, encoding: .utf8)
        for arguments in [
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pdrelay-test-ca", "-keyout", d + "/ca.key",
                "-out", d + "/ca.pem",
            ],
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=node", "-keyout", d + "/node.key", "-out", d + "/node.csr"],
            [
                "x509", "-req", "-in", d + "/node.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "1",
                "-extfile", d + "/san.ext", "-out", d + "/node.pem",
            ],
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=outsider", "-keyout", d + "/outsider.key",
                "-out", d + "/outsider.pem",
            ],
        ] {
            let openssl = Process()
            openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            openssl.arguments = arguments
            openssl.standardOutput = FileHandle.nullDevice
            openssl.standardError = FileHandle.nullDevice
            try openssl.run()
            await RelayProcess.waitForExit(openssl)
            #expect(openssl.terminationStatus == 0, "openssl \(arguments.prefix(2))")
        }
        for key in ["ca", "node", "outsider"] { chmod(files.key(key), 0o600) }
        return files
    }

    /// POSTs a signed status request, presenting `identity`'s certificate (nil: none), over
    /// `scheme`; the status, or nil when the connection or handshake failed.
    func post(_ port: Int, scheme: String, identity: String?, files: Files) async -> Int? {
        let tls = Self.clientTLS(identity: identity, files: files)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        defer { _ = client.shutdown() }
        let request = PeerTestSupport.signedStatusRequest(scheme: scheme, port: port, secret: Self.secret)
        return (try? await client.execute(request, timeout: .seconds(5))).map { Int($0.status.code) }
    }

    /// A peer stream, over TLS presenting `identity` (nil: none), or plain when `tls` is false;
    /// once the node has let it in, it sends a vote request for `voteTerm`. The open stream, or
    /// nil if the node did not let it in.
    func streamLetIn(_ port: Int, tls: Bool, identity: String?, files: Files, voteTerm: UInt64) async -> StreamPeer? {
        let context = tls ? try? NIOSSLContext(configuration: Self.clientTLS(identity: identity, files: files)) : nil
        guard let peer = try? await StreamPeer.connect(port: port, tls: context) else { return nil }
        let refusal: String?
        do {
            refusal = try await peer.handshake(as: 2, to: 1, secret: Self.secret)
        } catch {
            refusal = "\(error)"
        }
        guard refusal == nil else {
            await peer.close()
            return nil
        }
        try? await peer.write(peer.seal(kind: 16, PeerAuthenticationTests.vote(term: voteTerm)))
        return peer
    }

    static func clientTLS(identity: String?, files: Files) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(files.ca)
        tls.certificateVerification = .noHostnameVerification
        if let identity {
            tls.certificateChain = (try? NIOSSLCertificate.fromPEMFile(files.certificate(identity)))?.map { .certificate($0) } ?? []
            tls.privateKey = try? .privateKey(NIOSSLPrivateKey(file: files.key(identity), format: .pem))
        }
        return tls
    }

    @Test func onlyCAVerifiedPeersGetThrough() async throws {
        let files = try await Self.makeFiles()
        let peerPort = PeerTestSupport.peerPort()
        try await TestNode.run(configure: { configuration in
            PeerTestSupport.loneMember(&configuration, peerPort: peerPort, scheme: "https", secret: Self.secret)
            configuration.peerTLSCertificateFile = files.certificate("node")
            configuration.peerTLSKeyFile = files.key("node")
            configuration.peerTLSCAFile = files.ca
        }) { (node: TestNode) async throws in
            #expect(await post(peerPort, scheme: "http", identity: nil, files: files) == nil, "plain HTTP must not be answered")
            #expect(await post(peerPort, scheme: "https", identity: nil, files: files) == nil, "no client certificate")
            #expect(await post(peerPort, scheme: "https", identity: "outsider", files: files) == nil, "a certificate the CA did not sign")
            #expect(await post(peerPort, scheme: "https", identity: "node", files: files) == 200)

            // The peer stream likewise: only inside TLS, and only with a certificate the CA signed.
            #expect(await streamLetIn(peerPort, tls: false, identity: nil, files: files, voteTerm: 3) == nil, "a plain stream")
            #expect(await streamLetIn(peerPort, tls: true, identity: nil, files: files, voteTerm: 3) == nil, "no client certificate")
            #expect(await streamLetIn(peerPort, tls: true, identity: "outsider", files: files, voteTerm: 3) == nil, "an outsider")
            #expect(try await node.client.get("/v1/cluster").json?["term"] as? Int == 0)
            let member = await streamLetIn(peerPort, tls: true, identity: "node", files: files, voteTerm: 5)
            #expect(member != nil, "a member with the CA's certificate")
            try await PeerAuthenticationTests.waitForTerm(5) { try await node.client.get("/v1/cluster").json?["term"] as? Int }
            await member?.close()
        }
    }

    /// Two nodes whose links are mutual TLS form a cluster: each dials or accepts its peer stream
    /// inside TLS, and an event sent to either is forwarded to the leader and taken.
    @Test func twoNodesFormAClusterOverTLSStreams() async throws {
        let files = try await Self.makeFiles()
        let ports = (PeerTestSupport.peerPort(), PeerTestSupport.peerPort() + 1)
        let configure = { (id: Int, port: Int) in
            { (configuration: inout RelayConfiguration) in
                configuration.nodeID = id
                configuration.peerListenPort = port
                configuration.peers = "1=https://127.0.0.1:\(ports.0),2=https://127.0.0.1:\(ports.1)"
                configuration.clusterSecret = Self.secret
                configuration.peerTLSCertificateFile = files.certificate("node")
                configuration.peerTLSKeyFile = files.key("node")
                configuration.peerTLSCAFile = files.ca
            }
        }
        try await TestNode.run(configure: configure(1, ports.0)) { (first: TestNode) async throws in
            try await TestNode.run(configure: configure(2, ports.1), upstream: first.upstream) { (second: TestNode) async throws in
                for (index, node) in [first, second].enumerated() {
                    let key = "over-tls-\(index)"
                    let deadline = ContinuousClock.now + .seconds(20)
                    var status = 0
                    while status != 202 && ContinuousClock.now < deadline {
                        status = (try? await node.client.post("/v2/enqueue", json: TestSupport.alert(dedupKey: key)).status) ?? 0
                        if status != 202 { try await Task.sleep(for: .milliseconds(100)) }
                    }
                    #expect(status == 202, "node \(index + 1) did not take an event over the TLS cluster")
                }
            }
        }
    }

    @Test func halfAPeerTLSSetupOrAMismatchedSchemeIsRefused() async throws {
        let files = try await Self.makeFiles()
        var configuration = RelayConfiguration()
        configuration.peers = "1=https://127.0.0.1:9091,2=https://127.0.0.1:9092,3=https://127.0.0.1:9093"
        configuration.clusterSecret = Self.secret
        configuration.peerTLSCertificateFile = files.certificate("node")
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        configuration.peerTLSKeyFile = files.key("node")
        configuration.peerTLSCAFile = files.ca
        try configuration.validate()
        chmod(files.key("node"), 0o644)
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        chmod(files.key("node"), 0o600)
        configuration.peers = "1=http://127.0.0.1:9091,2=https://127.0.0.1:9092,3=https://127.0.0.1:9093"
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
    }
}
