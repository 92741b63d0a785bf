import Hummingbird
import RelayCore

/// The JSON body of an operator's or a monitored source's request (maintenance windows,
/// heartbeats): bounded, a JSON object, only the fields the endpoint knows, each of its type.
/// Every refusal is a `400` that names the field.
struct OperatorRequestBody {
    let object: [String: JSONValue]

    init(_ request: Request, known: Set<String>, maxBytes: Int) async throws {
        let body = try await request.body.collect(upTo: maxBytes)
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(Array(body.readableBytesView))
        } catch {
            throw HTTPError(.badRequest, message: "The body is not valid JSON: \(error)")
        }
        guard case .object(let object) = parsed else { throw HTTPError(.badRequest, message: "The body must be a JSON object") }
        for name in object.keys.sorted() where !known.contains(name) {
            throw HTTPError(
                .badRequest, message: "Unknown field '\(name.prefix(64))'; this takes \(known.sorted().joined(separator: ", "))")
        }
        self.object = object
    }

    func has(_ name: String) -> Bool { object[name] != nil }

    /// Nil when absent or `null`.
    func string(_ name: String) throws -> String? {
        guard let value = object[name], value != .null else { return nil }
        guard let text = value.stringValue else { throw HTTPError(.badRequest, message: "\(name) must be a string") }
        return text
    }

    func strings(_ name: String) throws -> [String]? {
        guard let value = object[name] else { return nil }
        guard case .array(let items) = value, items.allSatisfy({ $0.stringValue != nil }) else {
            throw HTTPError(.badRequest, message: "\(name) must be an array of strings")
        }
        return items.compactMap(\.stringValue)
    }

    func bool(_ name: String) throws -> Bool? {
        guard let value = object[name] else { return nil }
        guard case .bool(let flag) = value else { throw HTTPError(.badRequest, message: "\(name) must be true or false") }
        return flag
    }

    /// A whole number in `range`.
    func integer(_ name: String, in range: ClosedRange<Int64>) throws -> Int64? {
        guard let value = object[name] else { return nil }
        guard case .integer(let number) = value, range.contains(number) else {
            throw HTTPError(.badRequest, message: "\(name) must be a whole number, \(range.lowerBound)-\(range.upperBound)")
        }
        return number
    }
}
