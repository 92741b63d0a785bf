import Hummingbird
import Logging
import NIOCore

/// The request context of the client listeners: Hummingbird's basic one plus the address the
/// connection came from, which the webhook receiver checks against PagerDuty's safelist.
struct ClientRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
