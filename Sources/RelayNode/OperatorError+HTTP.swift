import Hummingbird
import RelayCore

extension HTTPError {
    /// The answer to a refused operator request: the status its kind names, its reason as the
    /// message.
    init(_ error: OperatorError) {
        let status: HTTPResponse.Status =
            switch error.kind {
            case .invalid: .badRequest
            case .forbidden: .forbidden
            case .unknown: .notFound
            case .conflict: .conflict
            }
        self.init(status, message: error.description)
    }
}
