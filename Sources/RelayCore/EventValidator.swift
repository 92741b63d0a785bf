import Crypto

/// Checks an event against PagerDuty's documented rules (`../shared/reference/events-api.md`) at
/// the door, and turns v1 events into v2: a client hears of a bad event at once, with PagerDuty's
/// own error text, rather than from a dead letter hours later.
public enum EventValidator {
    public static func validate(
        body: [UInt8], api: IngestAPI, limits: ValidationLimits = .pagerDuty
    ) -> Result<ValidatedEvent, IngestError> {
        guard body.count <= limits.maxEventBytes else {
            return .failure(.invalid(["Event is \(body.count) bytes; the limit is \(limits.maxEventBytes) bytes"]))
        }
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(body)
        } catch {
            return .failure(.unrecognized("JSON parse error"))
        }
        guard case .object(let object) = parsed else {
            return .failure(.unrecognized("Event must be a JSON object, not \(parsed.typeDescription)"))
        }
        var checker = FieldChecker(limits: limits)
        let fingerprint = Array(SHA256.hash(data: Array(api.rawValue.utf8) + [0] + body))
        switch api {
        case .v2Alert:
            return checker.alert(object, fingerprint: fingerprint, body: body)
        case .v2Change:
            return checker.change(object, fingerprint: fingerprint, body: body)
        case .v1Generic:
            return checker.v1(object, fingerprint: fingerprint)
        }
    }
}

/// Collects every problem in an event, as PagerDuty does, rather than stopping at the first.
private struct FieldChecker {
    let limits: ValidationLimits
    var errors: [String] = []

    mutating func alert(_ event: [String: JSONValue], fingerprint: [UInt8], body: [UInt8]) -> Result<ValidatedEvent, IngestError> {
        let routingKey = routingKey(event, field: "routing_key")
        let action = enumeration(event, "event_action", EventAction.alertActions)
        let dedupKey = dedupKey(event, field: "dedup_key", requiredFor: action)
        if action == .trigger {
            if let payload = object(event, "payload", required: true) {
                requiredString(payload, "summary", path: "payload.summary", maxCharacters: limits.maxSummaryCharacters)
                requiredString(payload, "source", path: "payload.source")
                enumeration(payload, "severity", Severity.names, path: "payload.severity")
                timestamp(payload, "timestamp", path: "payload.timestamp")
                for field in ["component", "group", "class"] { optionalString(payload, field, path: "payload.\(field)") }
            }
            for field in ["client", "client_url"] { optionalString(event, field) }
        }
        images(event["images"], path: "images")
        links(event["links"], path: "links")
        return finish(.v2Alert, action, routingKey, dedupKey, fingerprint, event, body)
    }

    mutating func change(_ event: [String: JSONValue], fingerprint: [UInt8], body: [UInt8]) -> Result<ValidatedEvent, IngestError> {
        let routingKey = routingKey(event, field: "routing_key")
        if let routingKey, routingKey.hasPrefix("R") {
            errors.append("'routing_key' is a ruleset key; change events need a service integration key")
        }
        if let payload = object(event, "payload", required: true) {
            requiredString(payload, "summary", path: "payload.summary", maxCharacters: limits.maxSummaryCharacters)
            optionalString(payload, "source", path: "payload.source")
            timestamp(payload, "timestamp", path: "payload.timestamp")
        }
        images(event["images"], path: "images")
        links(event["links"], path: "links")
        return finish(.v2Change, .change, routingKey, nil, fingerprint, event, body)
    }

    /// v1 events are checked by v1's rules, then translated to the v2 event that goes upstream.
    mutating func v1(_ event: [String: JSONValue], fingerprint: [UInt8]) -> Result<ValidatedEvent, IngestError> {
        let serviceKey = routingKey(event, field: "service_key")
        let action = enumeration(event, "event_type", EventAction.alertActions)
        let incidentKey = dedupKey(event, field: "incident_key", requiredFor: action)
        var v2: [String: JSONValue] = [:]
        if action == .trigger {
            let description = requiredString(event, "description", maxCharacters: limits.maxSummaryCharacters)
            let client = optionalString(event, "client")
            optionalString(event, "client_url")
            var payload: [String: JSONValue] = [
                "summary": .string(description ?? ""),
                "source": .string(client ?? "pdrelay"),
                "severity": .string(Severity.error.rawValue),
            ]
            if let details = event["details"] { payload["custom_details"] = details }
            v2["payload"] = .object(payload)
            for field in ["client", "client_url"] { if let value = event[field] { v2[field] = value } }
            let (links, images) = contexts(event["contexts"])
            if !links.isEmpty { v2["links"] = .array(links) }
            if !images.isEmpty { v2["images"] = .array(images) }
        }
        if let serviceKey { v2["routing_key"] = .string(serviceKey) }
        if let action { v2["event_action"] = .string(action.rawValue) }
        if let incidentKey { v2["dedup_key"] = .string(incidentKey) }
        return finish(.v1Generic, action, serviceKey, incidentKey, fingerprint, v2, nil)
    }

    private func finish(
        _ api: IngestAPI, _ action: EventAction?, _ routingKey: String?, _ dedupKey: String?,
        _ fingerprint: [UInt8], _ object: [String: JSONValue], _ body: [UInt8]?
    ) -> Result<ValidatedEvent, IngestError> {
        guard errors.isEmpty, let action, let routingKey else { return .failure(.invalid(errors)) }
        return .success(
            ValidatedEvent(
                api: api, action: action, routingKey: routingKey, dedupKey: dedupKey,
                fingerprint: fingerprint, object: object, originalBody: body))
    }

    // MARK: field rules

    private mutating func routingKey(_ event: [String: JSONValue], field: String) -> String? {
        guard let key = requiredString(event, field) else { return nil }
        let isAlphanumeric = key.utf8.allSatisfy { ASCII.isAlphanumeric($0) }
        if (isAlphanumeric ? key.utf8.count : key.count) != limits.routingKeyCharacters {
            errors.append("Length of '\(field)' is incorrect (should be \(limits.routingKeyCharacters) characters)")
            return nil
        }
        if !isAlphanumeric {
            errors.append("'\(field)' cannot contain non-alphanumeric characters.")
            return nil
        }
        return key
    }

    private mutating func dedupKey(_ event: [String: JSONValue], field: String, requiredFor action: EventAction?) -> String? {
        let required = action == .acknowledge || action == .resolve
        let key = required ? requiredString(event, field) : optionalString(event, field)
        guard let key else { return nil }
        if ASCII.characterCount(key, exceeds: limits.maxDedupKeyCharacters) {
            errors.append("Length of '\(field)' is incorrect (should be at most \(limits.maxDedupKeyCharacters) characters)")
            return nil
        }
        // A blank key on a trigger means "assign one", as PagerDuty does.
        return key.isEmpty ? nil : key
    }

    @discardableResult
    private mutating func requiredString(
        _ object: [String: JSONValue], _ field: String, path: String? = nil, maxCharacters: Int? = nil
    ) -> String? {
        let path = path ?? field
        guard let value = object[field], value != .null else {
            errors.append("'\(path)' is missing or blank")
            return nil
        }
        guard case .string(let string) = value else {
            errors.append("'\(path)' must be a string, not \(value.typeDescription)")
            return nil
        }
        if string.utf8.allSatisfy(ASCII.isWhitespace) {
            errors.append("'\(path)' is missing or blank")
            return nil
        }
        if let maxCharacters, ASCII.characterCount(string, exceeds: maxCharacters) {
            errors.append("Length of '\(path)' is incorrect (should be at most \(maxCharacters) characters)")
            return nil
        }
        return string
    }

    @discardableResult
    private mutating func optionalString(_ object: [String: JSONValue], _ field: String, path: String? = nil) -> String? {
        guard let value = object[field], value != .null else { return nil }
        guard case .string(let string) = value else {
            errors.append("'\(path ?? field)' must be a string, not \(value.typeDescription)")
            return nil
        }
        return string
    }

    private mutating func object(_ event: [String: JSONValue], _ field: String, required: Bool) -> [String: JSONValue]? {
        guard let value = event[field], value != .null else {
            if required { errors.append("'\(field)' is missing or blank") }
            return nil
        }
        guard case .object(let object) = value else {
            errors.append("'\(field)' must be an object, not \(value.typeDescription)")
            return nil
        }
        return object
    }

    @discardableResult
    private mutating func enumeration<Value: RawRepresentable<String>>(
        _ object: [String: JSONValue], _ field: String, _ allowed: [Value], path: String? = nil
    ) -> Value? {
        let path = path ?? field
        guard let string = requiredString(object, field, path: path) else { return nil }
        guard let value = allowed.first(where: { $0.rawValue == string }) else {
            let names = allowed.map(\.rawValue).joined(separator: ", ")
            errors.append("'\(path)' is invalid (must be one of \(names))")
            return nil
        }
        return value
    }

    private mutating func timestamp(_ object: [String: JSONValue], _ field: String, path: String) {
        guard let string = optionalString(object, field, path: path) else { return }
        if !ISO8601Syntax.isDateTime(string) {
            errors.append("'\(path)' is invalid (must be an ISO 8601 date-time such as 2015-07-17T08:42:58.315+0000)")
        }
    }

    private mutating func images(_ value: JSONValue?, path: String) {
        for (index, image) in items(value, path: path) {
            let itemPath = "\(path)[\(index)]"
            guard case .object(let image) = image else {
                errors.append("'\(itemPath)' must be an object")
                continue
            }
            if let src = requiredString(image, "src", path: "\(itemPath).src"), !src.lowercased().hasPrefix("https://") {
                errors.append("'\(itemPath).src' must be an HTTPS URL")
            }
            optionalString(image, "href", path: "\(itemPath).href")
            optionalString(image, "alt", path: "\(itemPath).alt")
        }
    }

    private mutating func links(_ value: JSONValue?, path: String) {
        for (index, link) in items(value, path: path) {
            let itemPath = "\(path)[\(index)]"
            guard case .object(let link) = link else {
                errors.append("'\(itemPath)' must be an object")
                continue
            }
            requiredString(link, "href", path: "\(itemPath).href")
            optionalString(link, "text", path: "\(itemPath).text")
        }
    }

    private mutating func items(_ value: JSONValue?, path: String) -> EnumeratedSequence<[JSONValue]> {
        guard let value, value != .null else { return [].enumerated() }
        guard case .array(let items) = value else {
            errors.append("'\(path)' must be an array, not \(value.typeDescription)")
            return [].enumerated()
        }
        return items.enumerated()
    }

    /// v1 `contexts` become v2 `links` and `images`, without their `type`.
    private mutating func contexts(_ value: JSONValue?) -> (links: [JSONValue], images: [JSONValue]) {
        var links: [JSONValue] = []
        var images: [JSONValue] = []
        for (index, context) in items(value, path: "contexts") {
            guard case .object(var fields) = context else {
                errors.append("'contexts[\(index)]' must be an object")
                continue
            }
            let type = fields.removeValue(forKey: "type")?.stringValue
            switch type {
            case "link":
                self.links(.array([.object(fields)]), path: "contexts[\(index)]")
                links.append(.object(fields))
            case "image":
                self.images(.array([.object(fields)]), path: "contexts[\(index)]")
                images.append(.object(fields))
            default:
                errors.append("'contexts[\(index)].type' is invalid (must be one of link, image)")
            }
        }
        return (links, images)
    }
}

public enum Severity: String, Sendable, CaseIterable {
    case critical, error, warning, info
    static let names = allCases
}

extension EventAction {
    static let alertActions: [EventAction] = [.trigger, .acknowledge, .resolve]
}
