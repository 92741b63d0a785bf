import Foundation
import Testing

@testable import RelayCore

@Suite struct JSONParserTests {
    func parse(_ text: String) -> JSONValue? { try? JSONValue.parse(Array(text.utf8)) }

    @Test(arguments: [
        (
            #"{"a":[1,-2.5,1e3,true,false,null,"x"]}"#,
            JSONValue.object(["a": .array([.integer(1), .number(-2.5), .number(1000), .bool(true), .bool(false), .null, "x"])])
        ),
        (#" [ ] "#, .array([])),
        (#"{}"#, .object([:])),
        (#""\"\\\/\b\f\n\r\t""#, .string("\"\\/\u{8}\u{c}\n\r\t")),
        (#""\u00e9\u20ac\ud83d\ude00""#, .string("é€😀")),
        (#""naïve ☃""#, .string("naïve ☃")),
        (#"9223372036854775807"#, .integer(Int64.max)),
        (#"9223372036854775808"#, .number(9_223_372_036_854_775_808)),
        (#"{"a":1,"a":2}"#, .object(["a": .integer(2)])),
    ])
    func validDocuments(_ text: String, _ expected: JSONValue) {
        #expect(parse(text) == expected)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\"1}", "{\"a\":1,}", "01", "1.", "-", "1e", "tru", "nul", "\"abc", "\"\\x\"", "\"\\ud800\"",
        "\"\\u12\"", "\"tab\there\"", "[1] 2", "{a:1}", "'x'", "1e999",
    ])
    func invalidDocuments(_ text: String) {
        #expect(parse(text) == nil, "accepted \(text)")
    }

    @Test func invalidUTF8IsRejected() {
        #expect((try? JSONValue.parse([0x22, 0xC3, 0x28, 0x22])) == nil)
        #expect((try? JSONValue.parse([0x22, 0xED, 0xA0, 0x80, 0x22])) == nil)
    }

    @Test func nestingIsBounded() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(parse(deep) == nil)
        let allowed = String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: JSONParser.maxDepth)
        #expect(parse(allowed) != nil)
    }

    @Test func encodingIsDeterministicAndRoundTrips() throws {
        let value = JSONValue.object([
            "z": .array([.integer(-3), .number(0.25), .null]), "a": .string("quote \" backslash \\ newline \n bell \u{7} é"),
            "m": .object(["y": .bool(true), "b": .bool(false)]),
        ])
        let bytes = value.encoded()
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(#"{"a":"quote \" backslash \\ newline \n bell \u0007 é","m":{"b":false"#))
        #expect(try JSONValue.parse(bytes) == value)
        // Foundation reads what we write.
        #expect((try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])?.keys.sorted() == ["a", "m", "z"])
    }
}
