// libFuzzer target: the gRPC length-prefix deframer, checked against a one-pass reference.
//
// Input: byte 0 picks the maximum message size (2^(b % 24) bytes), byte 1 seeds how the rest
// is cut into chunks (and which of the two `append`s takes each chunk); the rest is the
// stream as it arrives in DATA frames. Whatever the cut, the deframer must hand out exactly the
// messages, and the error, that reading the whole stream at once gives, and must not trap.
import SwerveStatus

@testable import SwerveTransport

/// What the whole stream holds: its messages, then either an error, a partial message, or nothing.
struct Outcome: Equatable {
    var messages: [[UInt8]] = []
    var error: GRPCStatusCode?
    var partial = false
}

func reference(_ stream: ArraySlice<UInt8>, max: Int) -> Outcome {
    var out = Outcome()
    var i = stream.startIndex
    while i < stream.endIndex {
        guard stream.endIndex - i >= 5 else { out.partial = true; return out }
        let flag = stream[i]
        let length = Int(stream[i + 1]) << 24 | Int(stream[i + 2]) << 16 | Int(stream[i + 3]) << 8 | Int(stream[i + 4])
        if flag != 0 { out.error = .internal; return out }
        if length > max { out.error = .resourceExhausted; return out }
        guard stream.endIndex - (i + 5) >= length else { out.partial = true; return out }
        out.messages.append(Array(stream[(i + 5)..<(i + 5 + length)]))
        i += 5 + length
    }
    return out
}

/// A tiny deterministic generator for the chunk sizes (SplitMix64).
struct Cuts {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeframer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let max = 1 << (Int(input[0]) % 24)
    var cuts = Cuts(state: UInt64(input[1]))
    let stream = Array(input[2...])[...]
    let expected = reference(stream, max: max)

    var deframer = GRPCMessageDeframer(maxMessageSize: max)
    var got = Outcome()
    var offset = stream.startIndex
    // Chunk sizes: mostly small, sometimes the whole rest, so both the one-chunk fast path
    // and the buffering path run.
    feeding: while offset < stream.endIndex {
        let r = cuts.next()
        let rest = stream.endIndex - offset
        let n = r % 8 == 0 ? rest : Swift.min(rest, 1 + Int(r >> 8) % 37)
        let chunk = stream[offset..<(offset + n)]
        offset += n
        if r & 0x10 == 0 {
            chunk.withUnsafeBytes { deframer.append($0) }
        } else {
            deframer.append(contentsOf: chunk)
        }
        do {
            while let message = try deframer.next() { got.messages.append(message) }
        } catch {
            got.error = error.code
            break feeding
        }
    }
    if got.error == nil { got.partial = deframer.hasPartialMessage }
    if got != expected {
        fatalError("deframer disagrees with the reference: got \(got.messages.count) messages, error \(String(describing: got.error)), partial \(got.partial); expected \(expected.messages.count), \(String(describing: expected.error)), \(expected.partial)")
    }
    return 0
}
