/// An event body that withholds its bytes once the send deadline has passed.
///
/// A process frozen (SIGSTOP, a VM pause) after a delivery started would otherwise write the
/// request when it wakes, before its timeout fires, possibly after a newer leader delivered: the
/// fencing rule needs every byte to leave before the deadline. AsyncHTTPClient builds a small
/// body (up to 4 MB, so any event) on the connection's event loop immediately before writing it,
/// through `withContiguousStorageIfAvailable`; that is where the clock is read. Past the deadline
/// it hands over no bytes, the request fails with a body-length mismatch and the connection
/// closes: PagerDuty got at most the headers and processes nothing.
struct DeadlineGuardedBytes: Collection, Sendable {
    let bytes: [UInt8]
    /// On the node's monotonic clock (`NodeEnvironment.monotonicMilliseconds`), read by `now`.
    let sendByMilliseconds: Int64
    let now: @Sendable () -> Int64

    var startIndex: Int { bytes.startIndex }
    var endIndex: Int { bytes.endIndex }
    subscript(position: Int) -> UInt8 { bytes[position] }
    func index(after index: Int) -> Int { bytes.index(after: index) }

    func withContiguousStorageIfAvailable<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result? {
        guard now() < sendByMilliseconds else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        return try bytes.withUnsafeBufferPointer(body)
    }
}
