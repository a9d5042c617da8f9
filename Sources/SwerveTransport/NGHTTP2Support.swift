internal import CNGHTTP2
#if canImport(Glibc)
import Glibc
#endif

// Small helpers shared by the server and client sessions. Everything here runs on one
// connection's event loop.

/// A header list laid out in one byte buffer, handed to nghttp2 as an `nghttp2_nv` array.
/// nghttp2 copies names and values on submit, so the storage only has to live for the call.
struct HeaderBlock {
    private var bytes: [UInt8] = []
    private var fields: [(nameStart: Int, nameLength: Int, valueLength: Int)] = []

    init(capacity: Int = 8) {
        bytes.reserveCapacity(capacity * 24)
        fields.reserveCapacity(capacity)
    }

    mutating func add(_ name: String, _ value: String) {
        let start = bytes.count
        bytes.append(contentsOf: name.utf8)
        let nameLength = bytes.count - start
        bytes.append(contentsOf: value.utf8)
        fields.append((start, nameLength, bytes.count - start - nameLength))
    }

    var count: Int { fields.count }

    func withNV<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        bytes.withUnsafeBufferPointer { storage in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(fields.count, 1)) { nva in
                let base = UnsafeMutablePointer(mutating: storage.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                for (i, field) in fields.enumerated() {
                    nva[i] = nghttp2_nv(
                        name: base + field.nameStart,
                        value: base + field.nameStart + field.nameLength,
                        namelen: field.nameLength,
                        valuelen: field.valueLength,
                        flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                }
                return body(UnsafePointer(nva.baseAddress!), fields.count)
            }
        }
    }
}

/// Outgoing gRPC messages of one stream, framed lazily: the 5-byte prefix is generated while
/// copying into nghttp2's frame buffer, so a message is never copied into an intermediate buffer.
struct OutboundMessageQueue {
    // The first message waits in `first` (a unary response never needs more), later ones in `rest`.
    private var first: [UInt8]?
    private var rest: [[UInt8]] = []
    private var restHead = 0
    /// Offset into the head message's framed form (prefix + body).
    private var offset = 0
    /// Framed bytes queued and not yet read out: what the connection's outbound cap counts.
    private(set) var pendingBytes = 0

    var isEmpty: Bool { first == nil }

    mutating func append(_ message: [UInt8]) {
        pendingBytes += 5 + message.count
        if first == nil { first = message } else { rest.append(message) }
    }

    /// Copies as many framed bytes as fit into `destination`; returns the count.
    mutating func read(into destination: UnsafeMutableRawBufferPointer) -> Int {
        var written = 0
        while written < destination.count, let message = first {
            if offset < 5 {
                let prefix = grpcMessagePrefix(length: message.count)
                let n = min(5 - offset, destination.count - written)
                withUnsafeBytes(of: prefix) { p in
                    (destination.baseAddress! + written).copyMemory(from: p.baseAddress! + offset, byteCount: n)
                }
                written += n
                offset += n
            }
            if offset >= 5 {
                let n = min(5 + message.count - offset, destination.count - written)
                if n > 0 {
                    message.withUnsafeBytes { p in
                        (destination.baseAddress! + written).copyMemory(from: p.baseAddress! + (offset - 5), byteCount: n)
                    }
                    written += n
                    offset += n
                }
                if offset == 5 + message.count {
                    offset = 0
                    advance()
                }
            }
        }
        pendingBytes -= written
        return written
    }

    private mutating func advance() {
        if restHead < rest.count {
            first = rest[restHead]
            rest[restHead] = []
            restHead += 1
            if restHead == rest.count {
                rest.removeAll(keepingCapacity: true)
                restHead = 0
            }
        } else {
            first = nil
        }
    }
}

extension nghttp2_frame {
    var isEndStream: Bool { hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 }
    var frameType: UInt32 { UInt32(hd.type) }
}

/// Strings for header names and values a connection sees again and again (":path", the
/// content-type, the user-agent): a header seen before costs a byte comparison, not an
/// allocation. Holds at most `capacity` entries and never evicts, so values that change per
/// request (timeouts, request ids) simply stay uncached once it is full.
struct HeaderStringCache {
    // Keys live back to back in one byte array, so a lookup compares bytes in place and retains
    // nothing but the String it returns.
    private var keyBytes: [UInt8] = []
    private var keys: [(start: Int, length: Int)] = []
    private var strings: [String] = []
    private let capacity: Int

    init(capacity: Int = 32) { self.capacity = capacity }

    mutating func string(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        let found: Int? = keyBytes.withUnsafeBufferPointer { storage in
            keys.withUnsafeBufferPointer { keys in
                for (i, key) in keys.enumerated() where key.length == length {
                    if memcmp(storage.baseAddress! + key.start, pointer, length) == 0 { return i }
                }
                return nil
            }
        }
        if let found { return strings[found] }
        let s = makeString(pointer, length)
        // Short strings are stored inline by Swift: caching them would save nothing.
        if length > 15 && strings.count < capacity {
            keys.append((keyBytes.count, length))
            keyBytes.append(contentsOf: UnsafeBufferPointer(start: pointer, count: length))
            strings.append(s)
        }
        return s
    }
}

/// A request's header fields as they arrived, kept as bytes in one buffer; Strings are made
/// only if someone asks for them (the request path never does).
struct HeaderFieldBytes: Sendable, Equatable {
    // Each field: 4-byte name length, 4-byte value length (native order), name, value.
    private var storage: [UInt8] = []

    var isEmpty: Bool { storage.isEmpty }

    mutating func append(name: UnsafePointer<UInt8>?, _ nameLength: Int, value: UnsafePointer<UInt8>?, _ valueLength: Int) {
        if storage.isEmpty { storage.reserveCapacity(256) }
        let total = 8 + nameLength + valueLength
        guard total <= 512 else { return appendPiecewise(name: name, nameLength, value: value, valueLength) }
        // A typical field (content-type, te, user-agent) is assembled on the stack and appended
        // once: four appends each paid the array's uniqueness and capacity checks.
        withUnsafeTemporaryAllocation(byteCount: total, alignment: 4) { field in
            field.storeBytes(of: UInt32(truncatingIfNeeded: nameLength), toByteOffset: 0, as: UInt32.self)
            field.storeBytes(of: UInt32(truncatingIfNeeded: valueLength), toByteOffset: 4, as: UInt32.self)
            if let name, nameLength > 0 { (field.baseAddress! + 8).copyMemory(from: name, byteCount: nameLength) }
            if let value, valueLength > 0 { (field.baseAddress! + 8 + nameLength).copyMemory(from: value, byteCount: valueLength) }
            storage.append(contentsOf: UnsafeRawBufferPointer(field))
        }
    }

    @inline(never)
    private mutating func appendPiecewise(name: UnsafePointer<UInt8>?, _ nameLength: Int, value: UnsafePointer<UInt8>?, _ valueLength: Int) {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: nameLength)) { storage.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: valueLength)) { storage.append(contentsOf: $0) }
        if let name, nameLength > 0 { storage.append(contentsOf: UnsafeBufferPointer(start: name, count: nameLength)) }
        if let value, valueLength > 0 { storage.append(contentsOf: UnsafeBufferPointer(start: value, count: valueLength)) }
    }

    /// Calls `body` with the bytes of the first field named `name` (lowercase), or nil; makes no
    /// strings, so the request path can look at one header cheaply.
    func withValue<R>(of name: StaticString, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { raw in
            let want = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
            var i = 0
            while i + 8 <= raw.count {
                let n = Int(raw.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                let v = Int(raw.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                i += 8
                if n == want.count, n == 0 || memcmp(raw.baseAddress! + i, want.baseAddress!, n) == 0 {
                    return try body(UnsafeRawBufferPointer(rebasing: raw[i + n..<i + n + v]))
                }
                i += n + v
            }
            return try body(nil)
        }
    }

    /// The fields as (name, value) strings, in arrival order.
    var fields: [(name: String, value: String)] {
        storage.withUnsafeBytes { raw in
            var out: [(name: String, value: String)] = []
            var i = 0
            while i + 8 <= raw.count {
                let n = Int(raw.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                let v = Int(raw.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                i += 8
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[i..<i + n]), as: UTF8.self)
                let value = String(decoding: UnsafeRawBufferPointer(rebasing: raw[i + n..<i + n + v]), as: UTF8.self)
                out.append((name, value))
                i += n + v
            }
            return out
        }
    }
}

/// True when the `length` bytes at `pointer` are `literal`'s UTF-8 bytes.
@inline(__always)
func bytesEqual(_ pointer: UnsafePointer<UInt8>?, _ length: Int, _ literal: StaticString) -> Bool {
    guard length == literal.utf8CodeUnitCount else { return false }
    guard length > 0 else { return true }
    return memcmp(pointer!, literal.utf8Start, length) == 0
}

/// True when the `length` bytes at `pointer` start with `literal`'s UTF-8 bytes.
@inline(__always)
func bytesHavePrefix(_ pointer: UnsafePointer<UInt8>?, _ length: Int, _ literal: StaticString) -> Bool {
    guard length >= literal.utf8CodeUnitCount else { return false }
    guard literal.utf8CodeUnitCount > 0 else { return true }
    return memcmp(pointer!, literal.utf8Start, literal.utf8CodeUnitCount) == 0
}

/// A header list that never changes (the response headers and OK trailers every call sends),
/// built once in static storage and handed to nghttp2 with NO_COPY flags.
struct StaticHeaders: @unchecked Sendable {
    let nva: UnsafeMutablePointer<nghttp2_nv>
    let count: Int

    init(_ fields: [(StaticString, StaticString)]) {
        count = fields.count
        nva = .allocate(capacity: fields.count)
        for (i, (name, value)) in fields.enumerated() {
            nva[i] = nghttp2_nv(
                name: UnsafeMutablePointer(mutating: name.utf8Start), value: UnsafeMutablePointer(mutating: value.utf8Start),
                namelen: name.utf8CodeUnitCount, valuelen: value.utf8CodeUnitCount,
                flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue))
        }
    }

    static let okResponse = StaticHeaders([(":status", "200"), ("content-type", "application/grpc")])
    static let okTrailers = StaticHeaders([("grpc-status", "0")])
}

@inline(__always)
func makeString(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> String {
    guard let pointer, length > 0 else { return "" }
    return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
}

/// nghttp2's words for one of its error codes.
func nghttp2ErrorString(_ code: Int) -> String {
    String(cString: nghttp2_strerror(Int32(truncatingIfNeeded: code)))
}
