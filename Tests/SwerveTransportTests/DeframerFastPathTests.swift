import Testing

@testable import SwerveTransport
import SwerveStatus

/// `GRPCMessageDeframer.append` takes a whole message (prefix + body) arriving in one chunk on
/// an empty deframer without buffering it. These pin that path's behaviour to the slow path's.
@Suite struct DeframerFastPathTests {
    static func frame(_ body: [UInt8], flag: UInt8 = 0, declaredLength: Int? = nil) -> [UInt8] {
        let n = UInt32(declaredLength ?? body.count)
        return [flag, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + body
    }

    static func append(_ bytes: [UInt8], to deframer: inout GRPCMessageDeframer) {
        bytes.withUnsafeBytes { deframer.append($0) }
    }

    static func body(_ n: Int, seed: Int = 0) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ seed) }
    }

    @Test func oneMessageInOneChunk() throws {
        for size in [1, 4, 5, 6, 300, 70_000] {
            var deframer = GRPCMessageDeframer(maxMessageSize: 1 << 20)
            let message = Self.body(size, seed: size)
            Self.append(Self.frame(message), to: &deframer)
            #expect(!deframer.hasPartialMessage, "a whole message is not a truncated one")
            #expect(try deframer.next() == message, "size \(size)")
            #expect(try deframer.next() == nil)
            #expect(!deframer.hasPartialMessage)
        }
    }

    @Test func messageIsCopiedOutOfTheCallersBuffer() throws {
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        var chunk = Self.frame([1, 2, 3])
        chunk.withUnsafeMutableBytes { buf in
            deframer.append(UnsafeRawBufferPointer(buf))
            // The caller reuses its buffer (nghttp2 does) before the message is taken.
            for i in buf.indices { buf[i] = 0xEE }
        }
        #expect(try deframer.next() == [1, 2, 3])
        _ = chunk
    }

    @Test func zeroLengthMessageInOneChunk() throws {
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        Self.append([0, 0, 0, 0, 0], to: &deframer)
        #expect(try deframer.next() == [])
        #expect(try deframer.next() == nil)
        #expect(!deframer.hasPartialMessage)
        // Two empty ones, each its own chunk, before next().
        Self.append([0, 0, 0, 0, 0], to: &deframer)
        Self.append([0, 0, 0, 0, 0], to: &deframer)
        #expect(try deframer.next() == [])
        #expect(try deframer.next() == [])
        #expect(try deframer.next() == nil)
        // Zero-length with a zero limit.
        var strict = GRPCMessageDeframer(maxMessageSize: 0)
        Self.append([0, 0, 0, 0, 0], to: &strict)
        #expect(try strict.next() == [])
    }

    @Test func twoWholeChunksBeforeNextComeOutInOrder() throws {
        let a = Self.body(10, seed: 1)
        let b = Self.body(20, seed: 2)
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        Self.append(Self.frame(a), to: &deframer)
        Self.append(Self.frame(b), to: &deframer)
        #expect(try deframer.next() == a)
        #expect(try deframer.next() == b)
        #expect(try deframer.next() == nil)
        #expect(!deframer.hasPartialMessage)
    }

    @Test func manyWholeChunksBeforeNext() throws {
        let messages = (0..<6).map { Self.body($0 * 7, seed: $0) }
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        for m in messages { Self.append(Self.frame(m), to: &deframer) }
        var out: [[UInt8]] = []
        while let m = try deframer.next() { out.append(m) }
        #expect(out == messages)
        #expect(!deframer.hasPartialMessage)
    }

    @Test func wholeChunkThenPartialChunk() throws {
        let a = Self.body(8, seed: 3)
        let b = Self.body(9, seed: 4)
        let framedB = Self.frame(b)
        for cut in 0..<framedB.count {
            var deframer = GRPCMessageDeframer(maxMessageSize: 100)
            Self.append(Self.frame(a), to: &deframer)
            Self.append(Array(framedB[..<cut]), to: &deframer)
            #expect(try deframer.next() == a, "cut \(cut)")
            #expect(try deframer.next() == nil, "cut \(cut)")
            #expect(deframer.hasPartialMessage == (cut > 0), "cut \(cut)")
            Self.append(Array(framedB[cut...]), to: &deframer)
            #expect(try deframer.next() == b, "cut \(cut)")
            #expect(try deframer.next() == nil)
            #expect(!deframer.hasPartialMessage)
        }
    }

    @Test func alternatingAppendAndNext() throws {
        var deframer = GRPCMessageDeframer(maxMessageSize: 1000)
        for i in 0..<50 {
            let m = Self.body(i * 3, seed: i)
            Self.append(Self.frame(m), to: &deframer)
            #expect(try deframer.next() == m)
            #expect(try deframer.next() == nil)
        }
    }

    @Test func partialThenWholeChunk() throws {
        // A chunk holding a whole message does not skip ahead of bytes already buffered.
        let a = Self.body(6, seed: 5)
        let b = Self.body(4, seed: 6)
        let framedA = Self.frame(a)
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        Self.append(Array(framedA[..<3]), to: &deframer)
        #expect(try deframer.next() == nil)
        Self.append(Array(framedA[3...]), to: &deframer)
        Self.append(Self.frame(b), to: &deframer)
        #expect(try deframer.next() == a)
        #expect(try deframer.next() == b)
        #expect(try deframer.next() == nil)
    }

    @Test func genericAppendAfterAFastPathMessageKeepsOrder() throws {
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        Self.append(Self.frame([1]), to: &deframer)
        deframer.append(contentsOf: Self.frame([2, 2]))
        Self.append(Self.frame([3, 3, 3]), to: &deframer)
        #expect(try deframer.next() == [1])
        #expect(try deframer.next() == [2, 2])
        #expect(try deframer.next() == [3, 3, 3])
        #expect(try deframer.next() == nil)
    }

    @Test func oversizeMessageInOneChunkIsResourceExhausted() throws {
        for (size, max) in [(101, 100), (1, 0), (70_000, 65_535)] {
            var deframer = GRPCMessageDeframer(maxMessageSize: max)
            Self.append(Self.frame(Self.body(size)), to: &deframer)
            do {
                let m = try deframer.next()
                Issue.record("expected RESOURCE_EXHAUSTED for \(size) > \(max), got \(String(describing: m?.count))")
            } catch {
                #expect(error.code == .resourceExhausted, "size \(size), max \(max)")
            }
        }
        // Exactly at the limit is accepted.
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        Self.append(Self.frame(Self.body(100)), to: &deframer)
        #expect(try deframer.next() == Self.body(100))
    }

    @Test func declaredLengthShorterThanTheChunkIsNotTakenWhole() throws {
        // Prefix says 2 bytes, chunk carries 3 more: the first 2 are the message, the third starts the next prefix.
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        Self.append(Self.frame([7, 8, 0], declaredLength: 2), to: &deframer)
        #expect(try deframer.next() == [7, 8])
        #expect(try deframer.next() == nil)
        #expect(deframer.hasPartialMessage)
        // Prefix declares more than the chunk carries: it waits.
        var waiting = GRPCMessageDeframer(maxMessageSize: 100)
        Self.append(Self.frame([7, 8], declaredLength: 3), to: &waiting)
        #expect(try waiting.next() == nil)
        #expect(waiting.hasPartialMessage)
        Self.append([9], to: &waiting)
        #expect(try waiting.next() == [7, 8, 9])
    }

    @Test func compressedFlagInOneChunkIsRejected() throws {
        for flag: UInt8 in [1, 2, 0x80, 0xFF] {
            var deframer = GRPCMessageDeframer(maxMessageSize: 100)
            Self.append(Self.frame([1, 2, 3], flag: flag), to: &deframer)
            do {
                let m = try deframer.next()
                Issue.record("expected an error for flag \(flag), got \(String(describing: m))")
            } catch {
                #expect(error.code == .internal, "flag \(flag)")
                if flag == 1 { #expect(error.message.contains("compressed")) }
            }
        }
        // Also with a zero-length body, and after a good message taken by the fast path.
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        Self.append(Self.frame([5]), to: &deframer)
        Self.append(Self.frame([], flag: 1), to: &deframer)
        #expect(try deframer.next() == [5])
        #expect(throws: GRPCStatus.self) { _ = try deframer.next() }
    }
}
