import Testing

@testable import SwerveTransport
import SwerveStatus

@Suite struct GRPCMessageDeframerTests {
    /// Frames messages the way a peer would.
    static func frame(_ messages: [[UInt8]], compressed: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = []
        for message in messages {
            let length = UInt32(message.count)
            bytes.append(compressed ? 1 : 0)
            bytes.append(contentsOf: [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)])
            bytes.append(contentsOf: message)
        }
        return bytes
    }

    static let messages: [[UInt8]] = [
        [],
        [42],
        Array(0..<255),
        [],
        (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) },
        [9, 8, 7],
    ]

    /// Feeds `chunks` in order and collects every message.
    static func deframe(_ chunks: [ArraySlice<UInt8>], max: Int = 1 << 20) throws -> [[UInt8]] {
        var deframer = GRPCMessageDeframer(maxMessageSize: max)
        var out: [[UInt8]] = []
        for chunk in chunks {
            chunk.withUnsafeBytes { deframer.append($0) }
            while let message = try deframer.next() { out.append(message) }
        }
        #expect(!deframer.hasPartialMessage)
        return out
    }

    @Test func wholeInput() throws {
        let input = Self.frame(Self.messages)
        #expect(try Self.deframe([input[...]]) == Self.messages)
    }

    @Test func everySplitIntoTwoChunks() throws {
        let input = Self.frame(Self.messages)
        for cut in 0...input.count {
            let out = try Self.deframe([input[..<cut], input[cut...]])
            #expect(out == Self.messages, "split at \(cut)")
            if out != Self.messages { return }
        }
    }

    @Test func byteByByte() throws {
        let input = Self.frame(Self.messages)
        let chunks = input.indices.map { input[$0...$0] }
        #expect(try Self.deframe(chunks) == Self.messages)
    }

    @Test func everySplitIntoThreeChunksOfASmallInput() throws {
        let messages: [[UInt8]] = [[], [1, 2], [], [3]]
        let input = Self.frame(messages)
        for a in 0...input.count {
            for b in a...input.count {
                #expect(try Self.deframe([input[..<a], input[a..<b], input[b...]]) == messages)
            }
        }
    }

    /// A hostile client declares the largest message and sends only its prefix, on many
    /// streams: the memory held must follow the bytes that arrived (which the request budgets
    /// charge), not the declared length.
    @Test func aDeclaredLengthReservesNothingUntilTheBytesArrive() throws {
        let declared = 4 << 20
        var deframer = GRPCMessageDeframer(maxMessageSize: declared)
        deframer.append(contentsOf: [0, UInt8(declared >> 24), UInt8(declared >> 16 & 0xFF), 0, 0, 1, 2, 3])
        #expect(try deframer.next() == nil)
        #expect(deframer.bufferedCapacity < 64 << 10, "holds \(deframer.bufferedCapacity) bytes for 3 that arrived")
        // The body still arrives whole and intact, chunk by chunk.
        let chunk = [UInt8](repeating: 7, count: 16 << 10)
        var sent = 3
        while sent + chunk.count <= declared {
            deframer.append(contentsOf: chunk)
            sent += chunk.count
            #expect(deframer.bufferedCapacity <= 2 * sent + 64, "capacity follows what arrived")
        }
        deframer.append(contentsOf: [UInt8](repeating: 7, count: declared - sent))
        let message = try #require(try deframer.next())
        #expect(message.count == declared)
        #expect(message[0...2] == [1, 2, 3] && message[3] == 7 && message[declared - 1] == 7)
    }

    @Test func partialMessageIsReported() throws {
        let input = Self.frame([[1, 2, 3, 4]])
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        input.dropLast().withUnsafeBytes { deframer.append($0) }
        #expect(try deframer.next() == nil)
        #expect(deframer.hasPartialMessage)
        [input.last!].withUnsafeBytes { deframer.append($0) }
        #expect(try deframer.next() == [1, 2, 3, 4])
        #expect(!deframer.hasPartialMessage)
    }

    @Test func oversizeDeclaredLengthFailsOnThePrefixAlone() {
        // Only the 5-byte prefix: the error must not wait for the body.
        let prefix = Array(Self.frame([Array(repeating: 0, count: 101)]).prefix(5))
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        prefix.withUnsafeBytes { deframer.append($0) }
        #expect(throws: GRPCStatus.self) { _ = try deframer.next() }
        do {
            _ = try deframer.next()
        } catch {
            #expect(error.code == .resourceExhausted)
        }
    }

    @Test func lengthAtTheLimitIsAccepted() throws {
        let message = Array(repeating: UInt8(1), count: 100)
        #expect(try Self.deframe([Self.frame([message])[...]], max: 100) == [message])
    }

    @Test func compressedFlagIsRejected() {
        var deframer = GRPCMessageDeframer(maxMessageSize: 100)
        Self.frame([[1, 2]], compressed: true).withUnsafeBytes { deframer.append($0) }
        do {
            _ = try deframer.next()
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .internal)
            #expect(error.message.contains("compressed"))
        }
    }

    @Test func outboundQueueFramesLikeThePeer() {
        // The encoder side, read through tiny and odd-sized windows, must produce the same bytes.
        for window in [1, 2, 3, 5, 7, 64, 4096] {
            var queue = OutboundMessageQueue()
            for message in Self.messages { queue.append(message) }
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: window)
            while !queue.isEmpty {
                let n = buffer.withUnsafeMutableBytes { queue.read(into: $0) }
                out.append(contentsOf: buffer[..<n])
            }
            #expect(out == Self.frame(Self.messages), "window \(window)")
        }
    }
}
