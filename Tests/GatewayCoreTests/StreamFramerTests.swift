import GatewayCore
import Testing

@Suite struct StreamFramerTests {
    func messages(_ items: [StreamFramer.Item]) -> [String] {
        items.compactMap { if case .message(let bytes) = $0 { String(decoding: bytes, as: UTF8.self) } else { nil } }
    }

    @Test func octetCountedAndNewlineFramesMixAndSplitAnywhere() {
        let stream = Array("11 <13>counted<13>line one\n5 <13>x\n<14>last".utf8)
        // Every split point gives the same messages.
        for split in 0...stream.count {
            var framer = StreamFramer(maxMessageBytes: 100)
            var items = framer.feed(stream[..<split])
            items += framer.feed(stream[split...])
            items += framer.finish()
            #expect(messages(items) == ["<13>counted", "<13>line one", "<13>x", "<14>last"], "split at \(split)")
        }
    }

    @Test func anOverlongFrameIsSkippedAndTheStreamGoesOn() {
        var framer = StreamFramer(maxMessageBytes: 8)
        let items = framer.feed(Array("<13>much too long for it\n<13>ok\n20 <13>counted but long<13>b\n".utf8))
        #expect(messages(items) == ["<13>ok", "<13>b"])
        #expect(items.filter { if case .malformed = $0 { true } else { false } }.count == 2)
    }

    @Test func linesModeNeverReadsACount() {
        var framer = StreamFramer(maxMessageBytes: 100, newlineOnly: true)
        #expect(messages(framer.feed(Array("12 pumps=3\r\nlevel=crit\n".utf8))) == ["12 pumps=3\r", "level=crit"])
    }
}
