import Testing

@testable import SwerveTransport

/// The allocation-free helpers the sessions use for headers and outgoing messages.
@Suite struct NGHTTP2SupportTests {
    // MARK: - HeaderStringCache

    static func lookup(_ cache: inout HeaderStringCache, _ s: String) -> String {
        let bytes = Array(s.utf8)
        return bytes.withUnsafeBufferPointer { cache.string($0.baseAddress, $0.count) }
    }

    static func lookup(_ cache: inout HeaderStringCache, bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { cache.string($0.baseAddress, $0.count) }
    }

    /// Where a (heap-allocated, longer than 15 bytes) string keeps its UTF-8: equal for two
    /// strings only when they share one storage object, i.e. the second came from the cache.
    static func storage(_ s: String) -> UInt? {
        s.utf8.withContiguousStorageIfAvailable { UInt(bitPattern: $0.baseAddress) } ?? nil
    }

    static func sameStorage(_ a: String, _ b: String) -> Bool {
        withExtendedLifetime((a, b)) { storage(a) != nil && storage(a) == storage(b) }
    }

    static let long = ["application/grpc+proto", "/inference.GRPCInferenceService/ModelInfer",
                       "grpc-swift/2.0 (linux; x86_64)", "abcdefghijklmnop", "abcdefghijklmnoq"]

    @Test func equalBytesGiveEqualStrings() {
        var cache = HeaderStringCache()
        let inputs = ["", "a", ":path", "content-type", "fifteen-bytes!!", "sixteen-bytes!!!"] + Self.long + ["日本語のヘッダー値です"]
        for round in 0..<3 {
            for s in inputs {
                #expect(Self.lookup(&cache, s) == s, "round \(round): \(s)")
            }
        }
        // Same length, same prefix, different last byte: never confused.
        #expect(Self.lookup(&cache, "abcdefghijklmnop") == "abcdefghijklmnop")
        #expect(Self.lookup(&cache, "abcdefghijklmnoq") == "abcdefghijklmnoq")
        // A cached key's prefix or extension is a different string.
        #expect(Self.lookup(&cache, "application/grpc+prot") == "application/grpc+prot")
        #expect(Self.lookup(&cache, "application/grpc+protoX") == "application/grpc+protoX")
        // Bytes that are not UTF-8 decode with replacement characters, the same every time.
        let invalid: [UInt8] = Array("header-value-with-".utf8) + [0xFF, 0xC0, 0x41]
        let first = Self.lookup(&cache, bytes: invalid)
        #expect(first == String(decoding: invalid, as: UTF8.self))
        #expect(Self.lookup(&cache, bytes: invalid) == first)
    }

    @Test func nilOrEmptyIsTheEmptyString() {
        var cache = HeaderStringCache()
        #expect(cache.string(nil, 0) == "")
        #expect(cache.string(nil, 5) == "")
        let bytes: [UInt8] = [0x61, 0x62]
        #expect(bytes.withUnsafeBufferPointer { cache.string($0.baseAddress, 0) } == "")
        #expect(bytes.withUnsafeBufferPointer { cache.string($0.baseAddress, 1) } == "a")
    }

    @Test func longStringsAreCachedShortOnesAreNot() {
        var cache = HeaderStringCache(capacity: 1)
        // 15 bytes or fewer: not cached, so they do not use up the one slot.
        for _ in 0..<3 {
            #expect(Self.lookup(&cache, "fifteen-bytes!!") == "fifteen-bytes!!")
            #expect(Self.lookup(&cache, "short") == "short")
        }
        let a = Self.lookup(&cache, "sixteen-bytes!!!")
        let b = Self.lookup(&cache, "sixteen-bytes!!!")
        #expect(a == "sixteen-bytes!!!" && b == a)
        #expect(Self.sameStorage(a, b), "a 16-byte string is served from the cache")
    }

    @Test func atMostCapacityEntriesAndStillCorrectWhenFull() {
        var cache = HeaderStringCache(capacity: 2)
        let first = Self.long.map { Self.lookup(&cache, $0) }
        let second = Self.long.map { Self.lookup(&cache, $0) }
        #expect(first == Self.long)
        #expect(second == Self.long)
        // The first two were cached; the rest were not (the cache was full), yet still correct.
        #expect(Self.sameStorage(first[0], second[0]))
        #expect(Self.sameStorage(first[1], second[1]))
        for i in 2..<Self.long.count {
            #expect(!Self.sameStorage(first[i], second[i]), "\(Self.long[i]) cached beyond capacity")
        }
        // Many more distinct values once full: all correct, the cached ones still served.
        for i in 0..<200 {
            let s = "x-request-id-\(i)-0123456789"
            #expect(Self.lookup(&cache, s) == s)
        }
        #expect(Self.sameStorage(Self.lookup(&cache, Self.long[0]), first[0]))
        #expect(Self.sameStorage(Self.lookup(&cache, Self.long[1]), first[1]))
    }

    @Test func zeroCapacityCachesNothing() {
        var cache = HeaderStringCache(capacity: 0)
        let a = Self.lookup(&cache, Self.long[0])
        let b = Self.lookup(&cache, Self.long[0])
        #expect(a == Self.long[0] && b == a)
        #expect(!Self.sameStorage(a, b))
    }

    @Test func cachedStringDoesNotDependOnTheCallersBuffer() {
        var cache = HeaderStringCache()
        var bytes = Array("/inference.GRPCInferenceService/ModelInfer".utf8)
        let s = Self.lookup(&cache, bytes: bytes)
        for i in bytes.indices { bytes[i] = 0x2A }
        #expect(s == "/inference.GRPCInferenceService/ModelInfer")
        #expect(Self.lookup(&cache, bytes: bytes) == String(repeating: "*", count: bytes.count))
        #expect(Self.lookup(&cache, "/inference.GRPCInferenceService/ModelInfer") == s)
    }

    // MARK: - bytesEqual / bytesHavePrefix

    static func equal(_ s: String, _ literal: StaticString) -> Bool {
        let b = Array(s.utf8)
        return b.withUnsafeBufferPointer { bytesEqual($0.baseAddress, $0.count, literal) }
    }

    static func hasPrefix(_ s: String, _ literal: StaticString) -> Bool {
        let b = Array(s.utf8)
        return b.withUnsafeBufferPointer { bytesHavePrefix($0.baseAddress, $0.count, literal) }
    }

    @Test func bytesEqualComparesWholeValues() {
        #expect(Self.equal(":path", ":path"))
        #expect(Self.equal("content-type", "content-type"))
        #expect(!Self.equal(":pat", ":path"))
        #expect(!Self.equal(":paths", ":path"))
        #expect(!Self.equal(":patH", ":path"))
        #expect(!Self.equal("Content-Type", "content-type"))
        #expect(!Self.equal("", ":path"))
        #expect(Self.equal("", ""))
        #expect(!Self.equal("x", ""))
        #expect(bytesEqual(nil, 0, ""))
        #expect(!bytesEqual(nil, 0, "POST"))
        // Only `length` bytes are compared.
        let b = Array("POSTX".utf8)
        #expect(b.withUnsafeBufferPointer { bytesEqual($0.baseAddress, 4, "POST") })
        #expect(!b.withUnsafeBufferPointer { bytesEqual($0.baseAddress, 5, "POST") })
    }

    @Test func bytesHavePrefixComparesTheStart() {
        #expect(Self.hasPrefix("application/grpc", "application/grpc"))
        #expect(Self.hasPrefix("application/grpc+proto", "application/grpc"))
        #expect(Self.hasPrefix("application/grpc;charset=utf-8", "application/grpc"))
        #expect(!Self.hasPrefix("application/grp", "application/grpc"))
        #expect(!Self.hasPrefix("application/json", "application/grpc"))
        #expect(!Self.hasPrefix("Application/grpc", "application/grpc"))
        #expect(!Self.hasPrefix("", "application/grpc"))
        #expect(Self.hasPrefix("anything", ""))
        #expect(Self.hasPrefix("", ""))
        #expect(bytesHavePrefix(nil, 0, ""))
        #expect(!bytesHavePrefix(nil, 0, "a"))
        // Only `length` bytes count: a short length is no match even if more bytes follow.
        let b = Array("application/grpc".utf8)
        #expect(!b.withUnsafeBufferPointer { bytesHavePrefix($0.baseAddress, 11, "application/grpc") })
    }

    // MARK: - OutboundMessageQueue

    static func frame(_ messages: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for m in messages {
            let n = UInt32(m.count)
            out += [0, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + m
        }
        return out
    }

    /// Reads everything queued through a destination of `window` bytes, checking that each read
    /// fills the destination unless the queue runs dry.
    static func drain(_ queue: inout OutboundMessageQueue, window: Int, sourceLocation: SourceLocation = #_sourceLocation) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: window)
        var reads = 0
        while !queue.isEmpty {
            let n = buffer.withUnsafeMutableBytes { queue.read(into: $0) }
            #expect(n > 0, "no progress", sourceLocation: sourceLocation)
            if n == 0 { break }
            if n < window { #expect(queue.isEmpty, "short read of \(n) with bytes left", sourceLocation: sourceLocation) }
            out += buffer[..<n]
            reads += 1
            if reads > 1_000_000 { Issue.record("runaway", sourceLocation: sourceLocation); break }
        }
        #expect(buffer.withUnsafeMutableBytes { queue.read(into: $0) } == 0, sourceLocation: sourceLocation)
        return out
    }

    static let one: [[UInt8]] = [Array(0..<10)]
    static let three: [[UInt8]] = [Array(repeating: 0xAA, count: 3), [], (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 5) }]

    @Test(arguments: [1, 3, 7, 4096]) func framedBytesThroughWindow(window: Int) {
        for messages in [Self.one, Self.three, [[]], [[9]], [[], []]] {
            var queue = OutboundMessageQueue()
            #expect(queue.isEmpty)
            for m in messages { queue.append(m) }
            #expect(!queue.isEmpty)
            let out = Self.drain(&queue, window: window)
            #expect(out == Self.frame(messages), "window \(window), \(messages.count) messages")
            #expect(queue.isEmpty)
            // The emptied queue takes new messages as its first again.
            queue.append([1, 2, 3])
            #expect(Self.drain(&queue, window: window) == Self.frame([[1, 2, 3]]))
        }
    }

    @Test(arguments: [1, 3, 7, 4096]) func appendingAfterPartialReadsKeepsOrder(window: Int) {
        let messages: [[UInt8]] = (0..<6).map { i in (0..<(i * 5 + (i == 4 ? 5000 : 0))).map { UInt8(truncatingIfNeeded: $0 + i) } }
        let expected = Self.frame(messages)
        // Append message k+1 after the k-th read, wherever that read stopped.
        var queue = OutboundMessageQueue()
        queue.append(messages[0])
        var next = 1
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: window)
        while !queue.isEmpty || next < messages.count {
            if queue.isEmpty {
                queue.append(messages[next]); next += 1
            }
            let n = buffer.withUnsafeMutableBytes { queue.read(into: $0) }
            out += buffer[..<n]
            if next < messages.count { queue.append(messages[next]); next += 1 }
        }
        #expect(out == expected, "window \(window)")

        // Interleavings at every offset of the first message's framed form: read `cut` bytes,
        // append the rest, then drain.
        let framedFirst = Self.frame([messages[1]]).count
        for cut in 0...framedFirst {
            var q = OutboundMessageQueue()
            q.append(messages[1])
            var head = [UInt8](repeating: 0, count: cut)
            let n = head.withUnsafeMutableBytes { q.read(into: $0) }
            #expect(n == cut)
            for m in messages[2...] { q.append(m) }
            let rest = Self.drain(&q, window: window)
            #expect(head + rest == Self.frame(Array(messages[1...])), "cut \(cut), window \(window)")
        }
    }

    @Test func zeroSizedDestinationReadsNothing() {
        var queue = OutboundMessageQueue()
        queue.append([1, 2])
        var empty: [UInt8] = []
        #expect(empty.withUnsafeMutableBytes { queue.read(into: $0) } == 0)
        #expect(!queue.isEmpty)
        #expect(Self.drain(&queue, window: 3) == Self.frame([[1, 2]]))
    }
}
