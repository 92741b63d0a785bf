import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the HTTPS listener's certificate and key on SIGHUP, as nginx and HAProxy do, so that
/// a renewed certificate (certbot's deploy hook, a secrets agent) is served without a restart.
struct CertificateReloadService: Service {
    let tls: IngestTLS
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let served = try tls.reload()
                logger.notice("SIGHUP: reloaded the TLS certificate", metadata: ["certificate": "\(served)"])
            } catch {
                logger.error(
                    "SIGHUP: error: cannot reload the TLS certificate; still serving the previous one",
                    metadata: ["error": "\(error)", "certificate": "\(tls.servedCertificate)"])
            }
        }
    }
}
