import Foundation
import Testing

/// Runs every transcript in `testdata/` and compares what the cluster printed with what the file
/// says. `PDRELAY_REWRITE_TRANSCRIPTS=1 swift test --filter TranscriptTests` writes the output
/// into the files instead; review the diff before committing it.
///
/// A file is a sequence of blocks: a command, a line `----`, the expected output, a blank line.
/// Lines starting with `#` between blocks are comments and are kept.
@Suite struct TranscriptTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata")
    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
    }
    static let rewriting = ProcessInfo.processInfo.environment["PDRELAY_REWRITE_TRANSCRIPTS"] == "1"

    @Test func thereAreTranscripts() {
        #expect(!Self.files.isEmpty, "no transcripts in \(Self.directory.path)")
    }

    @Test(arguments: files) func theClusterDoesWhatTheTranscriptSays(_ file: String) throws {
        let path = Self.directory.appendingPathComponent(file).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var cluster = TranscriptCluster()
        var written: [String] = []
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)[...]
        while let line = lines.popFirst() {
            guard !line.isEmpty, !line.hasPrefix("#") else {
                written.append(line)
                continue
            }
            guard lines.popFirst() == "----" else {
                Issue.record("\(file): the command '\(line)' is not followed by ----")
                return
            }
            var expected: [String] = []
            while let next = lines.first, !next.isEmpty {
                expected.append(next)
                lines.removeFirst()
            }
            let actual: [String]
            do {
                actual = try cluster.run(line)
            } catch {
                actual = ["error: \(error)"]
            }
            if !Self.rewriting {
                #expect(actual == expected, "\(file), after '\(line)':\n\(actual.joined(separator: "\n"))")
            }
            written += [line, "----"] + actual
        }
        if Self.rewriting { try written.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8) }
    }
}
