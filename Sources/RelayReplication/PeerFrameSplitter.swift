/// Cuts a peer stream's bytes into frame bodies, as they arrive in reads of any size. It
/// buffers at most one frame, refuses a length beyond `PeerFrame.maxBodyBytes` before
/// buffering it, and keeps a frame cut short by a reset out of sight: only whole bodies come out.
public struct PeerFrameSplitter: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    /// The preface still to be checked (on the listening side), or nothing.
    private var prefaceExpected: [UInt8]

    /// `expectingPreface`: on the listening side, the stream starts with `PeerFrame.preface`.
    public init(expectingPreface: Bool) {
        prefaceExpected = expectingPreface ? PeerFrame.preface : []
    }

    /// Bytes buffered and not yet returned as frames.
    public var bufferedBytes: Int { buffer.count - start }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame's body (kind and payload), or nil until more bytes arrive.
    public mutating func next() throws(PeerStreamRefusal) -> ArraySlice<UInt8>? {
        if !prefaceExpected.isEmpty {
            guard bufferedBytes >= prefaceExpected.count else {
                guard buffer[start...].elementsEqual(prefaceExpected.prefix(bufferedBytes)) else {
                    throw PeerStreamRefusal(.badPreface, "the stream does not start with pdrelay's peer preface")
                }
                return nil
            }
            guard buffer[start..<start + prefaceExpected.count].elementsEqual(prefaceExpected) else {
                throw PeerStreamRefusal(.badPreface, "the stream does not start with pdrelay's peer preface (version 1)")
            }
            start += prefaceExpected.count
            prefaceExpected = []
        }
        guard bufferedBytes >= PeerFrame.lengthBytes else { return nil }
        let length = Int(PeerFrame.readBigEndian(buffer[start..<start + PeerFrame.lengthBytes]))
        guard length >= 1 else { throw PeerStreamRefusal(.malformed, "a frame of no bytes") }
        guard length <= PeerFrame.maxBodyBytes else {
            throw PeerStreamRefusal(.frameTooLarge, "a frame of \(length) bytes; at most \(PeerFrame.maxBodyBytes) are accepted")
        }
        guard bufferedBytes >= PeerFrame.lengthBytes + length else { return nil }
        let bodyStart = start + PeerFrame.lengthBytes
        start = bodyStart + length
        return buffer[bodyStart..<start]
    }
}
