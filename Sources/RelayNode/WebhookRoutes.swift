import EngineCore
import GatewayCore
import Hummingbird
import Logging
import RelayCore

/// `POST /v1/webhooks/pagerduty`: PagerDuty's v3 webhooks, which say when a person acknowledged
/// or resolved an incident. Checked in this order, each refusal changing nothing: the source
/// address against the safelist (403), the signature over the raw body (401), the body (400).
/// A genuine webhook is applied to the folders of its `incident_key` through the replicated log,
/// and answered 202 within `answerMilliseconds`, well inside PagerDuty's 5 s; a slower commit
/// gets 503, and PagerDuty's retry, with the same `X-Webhook-Id`, is then a duplicate or the
/// first that lands.
struct WebhookRoutes: Sendable {
    let commands: CommandRouter
    let secrets: [String]
    let allowList: WebhookAllowListFile
    let metrics: NodeMetrics
    let logger: Logger
    static let answerMilliseconds: Int64 = 3_000
    static let path = "/v1/webhooks/pagerduty"

    func register(on router: Router<ClientRequestContext>) {
        router.post(RouterPath(Self.path)) { request, context in await receive(request, context: context) }
    }

    func receive(_ request: Request, context: ClientRequestContext) async -> Response {
        let source = context.remoteAddress?.ipAddress ?? "unknown"
        guard allowList.current().allows(source) else {
            return refuse(.forbidden, "forbidden", "the source address \(source) is not in webhook_allowed_networks_file", source: source)
        }
        let body: [UInt8]
        do {
            body = Array(try await request.body.collect(upTo: PagerDutyWebhook.maxBodyBytes).readableBytesView)
        } catch {
            return refuse(.contentTooLarge, "malformed", "the body is over \(PagerDutyWebhook.maxBodyBytes) bytes", source: source)
        }
        guard WebhookSignature.isValid(body: body, header: request.headers[.init("X-PagerDuty-Signature")!], secrets: secrets) else {
            return refuse(.unauthorized, "bad_signature", "no X-PagerDuty-Signature v1 signature matches webhook_secret", source: source)
        }
        let webhook: PagerDutyWebhook
        do {
            webhook = try PagerDutyWebhook.parse(body)
        } catch {
            return refuse(.badRequest, "malformed", error.description, source: source)
        }
        guard let status = webhook.status, let key = webhook.incidentKey, !key.isEmpty else {
            metrics.webhook("ignored")
            return JSONResponses.json(.accepted, .object(["status": "ignored", "event_type": .string(webhook.eventType)]))
        }
        guard let occurred = MaintenanceWindowView.milliseconds(rfc3339: webhook.occurredAt) else {
            return refuse(.badRequest, "malformed", "event.occurred_at is not an RFC 3339 time", source: source)
        }
        let webhookID = request.headers[.init("X-Webhook-Id")!] ?? webhook.eventID
        let view = PagerDutyView(
            webhookID: webhookID, status: status, by: webhook.agent, occurredAtMilliseconds: occurred, incidentID: webhook.incidentID ?? "")
        switch await submit(.applyWebhook(dedupKey: key, view)) {
        case .success(.webhookApplied(let folders, let refusals)):
            let outcome = folders > 0 ? "applied" : refusals.contains("duplicate") ? "duplicate" : refusals.isEmpty ? "no_folder" : "stale"
            metrics.webhook(outcome)
            logger.info(
                "PagerDuty webhook",
                metadata: [
                    "event_type": "\(webhook.eventType)", "dedup_key": "\(key)", "by": "\(webhook.agent ?? "-")", "outcome": "\(outcome)",
                    "webhook_id": "\(webhookID)",
                ])
            return JSONResponses.json(
                .accepted, .object(["status": .string(outcome), "folders": .integer(Int64(folders)), "dedup_key": .string(key)]))
        case .success(let result):
            preconditionFailure("applyWebhook returned \(result)")
        case .failure(let reason):
            // A 5xx: PagerDuty retries it, with the same X-Webhook-Id.
            metrics.webhook("unavailable")
            logger.warning(
                "PagerDuty webhook not recorded; PagerDuty will retry it", metadata: ["reason": "\(reason)", "webhook_id": "\(webhookID)"])
            return JSONResponses.unavailable(
                status: "unavailable", message: "The webhook was not recorded (\(reason)); PagerDuty will retry it", retryAfterSeconds: 1)
        }
    }

    /// The command's result, or why there is none: the engine's refusal (no leader, a store
    /// failure), or no commit within `answerMilliseconds`.
    private func submit(_ command: RelayCommand) async -> Swift.Result<CommandResult, WebhookNotRecorded> {
        await withTaskGroup(of: Swift.Result<CommandResult, WebhookNotRecorded>.self) { group in
            group.addTask {
                do throws(EngineError) {
                    return .success(try await commands.submit(command))
                } catch {
                    return .failure(WebhookNotRecorded(description: IngestRoutes.explain(error)))
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Self.answerMilliseconds))
                return .failure(WebhookNotRecorded(description: "not committed within \(Self.answerMilliseconds) ms"))
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    struct WebhookNotRecorded: Error, CustomStringConvertible {
        let description: String
    }

    private func refuse(_ status: HTTPResponse.Status, _ outcome: String, _ reason: String, source: String) -> Response {
        metrics.webhook(outcome)
        logger.warning("PagerDuty webhook refused", metadata: ["reason": "\(reason)", "source": "\(source)"])
        return JSONResponses.json(status, .object(["status": .string(outcome), "message": .string(reason)]))
    }
}
