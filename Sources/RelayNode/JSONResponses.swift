import Hummingbird
import RelayCore

/// PagerDuty's response bodies, byte for byte where PagerDuty documents them.
enum JSONResponses {
    static func json(_ status: HTTPResponse.Status, _ value: JSONValue, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: value.encoded())))
    }

    static func error(_ status: HTTPResponse.Status, _ error: IngestError, headers: HTTPFields = [:]) -> Response {
        json(
            status,
            .object([
                "status": .string(error.status), "message": .string(error.message),
                "errors": .array(error.errors.map(JSONValue.string)),
            ]), headers: headers)
    }

    /// 202 on v2 (with `dedup_key`, which pdpyras and python-pagerduty require even on resolve);
    /// 200 with `incident_key` on v1.
    static func accepted(_ api: IngestAPI, dedupKey: String) -> Response {
        switch api {
        case .v2Alert:
            json(.accepted, .object(["status": "success", "message": "Event processed", "dedup_key": .string(dedupKey)]))
        case .v2Change:
            json(.accepted, .object(["status": "success", "message": "Change event processed"]))
        case .v1Generic:
            json(.ok, .object(["status": "success", "message": "Event processed", "incident_key": .string(dedupKey)]))
        }
    }

    /// A 503 that clients retry: Alertmanager, pdpyras and pd-send all back off on 5xx.
    static func unavailable(status: String, message: String, retryAfterSeconds: Int) -> Response {
        error(
            .serviceUnavailable, IngestError(status: status, message: message, errors: [message]),
            headers: [.retryAfter: String(retryAfterSeconds)])
    }
}
