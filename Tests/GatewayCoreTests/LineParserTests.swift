import GatewayCore
import Testing

@Suite struct LineParserTests {
    @Test func keyValuePairsWithQuotes() throws {
        let fields = try LineParser.parse(Array(#"host=plc-7 level=crit msg="over temperature \"B2\"" temp=71.5"#.utf8))
        #expect(fields == ["host": "plc-7", "level": "crit", "msg": #"over temperature "B2""#, "temp": "71.5"])
    }

    @Test func jsonObjectsFlatten() throws {
        let fields = try LineParser.parse(Array(#"{"host":"bess-2","temp":41,"ok":false,"tags":["a"],"none":null}"#.utf8))
        #expect(fields == ["host": "bess-2", "temp": "41", "ok": "false", "tags": #"["a"]"#])
    }

    @Test func malformedLinesAreRefused() {
        for line in ["", "   ", "no pairs here", #"k="open"#, "{\"a\":", "[1,2]", "=v", #"k="v"x"#] {
            #expect(throws: GatewayParseError.self, "\(line)") { try LineParser.parse(Array(line.utf8)) }
        }
    }
}
