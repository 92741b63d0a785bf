import Foundation

/// PagerDuty's rules for an incoming event, written out again from its documentation
/// (`../shared/reference/events-api.md`), with Foundation's JSON parser: the mock judges what the
/// relay sends with code of its own, so a bug in the relay's `EventValidator` (or its parser)
/// cannot hide by agreeing with itself. Where the sources leave a rule open, this side is lenient.
enum PagerDutyRules {
    /// "512 KB per event": whether 512,000 or 524,288 is undocumented, so the larger.
    static let maxEventBytes = 524_288
    static let maxSummaryCharacters = 1_024
    static let maxDedupKeyCharacters = 255
    static let severities: Set<String> = ["critical", "error", "warning", "info"]
    static let actions: Set<String> = ["trigger", "acknowledge", "resolve"]

    /// The errors PagerDuty would answer `400` with; empty when it would accept the event.
    static func errors(body: [UInt8], changeEvent: Bool) -> [String] {
        guard body.count <= maxEventBytes else { return ["Event is larger than 512 KB"] }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
            return ["Event object is not a JSON object"]
        }
        var errors = routingKeyErrors(object["routing_key"])
        let payload = object["payload"]
        if changeEvent {
            errors += payloadErrors(payload, requireSourceAndSeverity: false)
            errors += linkErrors(object["links"])
            return errors
        }
        guard let action = object["event_action"] as? String, actions.contains(action) else {
            return errors + ["'event_action' is missing or invalid (must be one of trigger, acknowledge, resolve)"]
        }
        if let dedupKey = object["dedup_key"] {
            if (dedupKey as? String).map({ $0.count <= maxDedupKeyCharacters }) != true {
                errors.append("'dedup_key' must be a string of at most \(maxDedupKeyCharacters) characters")
            }
        } else if action != "trigger" {
            errors.append("'dedup_key' is required for \(action)")
        }
        // Acknowledge and resolve may carry a payload (Alertmanager and Grafana send one); it is
        // ignored.
        guard action == "trigger" else { return errors }
        errors += payloadErrors(payload, requireSourceAndSeverity: true)
        errors += linkErrors(object["links"])
        if let images = object["images"] {
            let valid =
                (images as? [Any])?.allSatisfy { item in
                    guard let image = item as? [String: Any], let source = image["src"] as? String else { return false }
                    return source.lowercased().hasPrefix("https://")
                } ?? false
            if !valid { errors.append("'images' must be a list of objects each with an https 'src'") }
        }
        return errors
    }

    private static func routingKeyErrors(_ value: Any?) -> [String] {
        guard let key = value as? String else { return ["'routing_key' is missing or blank"] }
        guard key.count == 32 else { return ["Length of 'routing_key' is incorrect (should be 32 characters)"] }
        return []
    }

    private static func payloadErrors(_ value: Any?, requireSourceAndSeverity: Bool) -> [String] {
        guard let payload = value as? [String: Any] else { return ["'payload' is missing or not an object"] }
        var errors: [String] = []
        if let summary = payload["summary"] as? String, !summary.isEmpty {
            if summary.count > maxSummaryCharacters {
                errors.append("'payload.summary' is longer than \(maxSummaryCharacters) characters")
            }
        } else {
            errors.append("'payload.summary' is missing or blank")
        }
        if requireSourceAndSeverity {
            if (payload["source"] as? String)?.isEmpty ?? true { errors.append("'payload.source' is missing or blank") }
            if let severity = payload["severity"] as? String {
                if !severities.contains(severity) { errors.append("'payload.severity' is invalid") }
            } else {
                errors.append("'payload.severity' is missing or blank")
            }
        }
        for field in ["timestamp", "component", "group", "class"] where payload[field] != nil && !(payload[field] is String) {
            errors.append("'payload.\(field)' must be a string")
        }
        if let details = payload["custom_details"], !(details is [String: Any]) {
            errors.append("'payload.custom_details' must be an object")
        }
        return errors
    }

    private static func linkErrors(_ value: Any?) -> [String] {
        guard let value else { return [] }
        let valid = (value as? [Any])?.allSatisfy { (($0 as? [String: Any])?["href"] as? String) != nil } ?? false
        return valid ? [] : ["'links' must be a list of objects each with an 'href'"]
    }
}
