internal import CSwerveProto
import SwerveStatus
#if canImport(Glibc)
import Glibc
#endif

/// A message that could not be decoded: protobuf-c rejected the bytes (truncated data,
/// a field with the wrong wire type, invalid UTF-8 is not checked) or a value was out of range.
public struct ProtoDecodingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Every Swift message type converts to and from protobuf wire bytes through protobuf-c.
public protocol ProtoMessage: Sendable {
    init(serializedBytes bytes: [UInt8]) throws
    func serializedBytes() -> [UInt8]
}

/// Owns the C memory used while building protobuf-c structs for packing. Everything is
/// released together when the arena goes away, so builders never free piecemeal. Memory comes
/// from the thread's scratch arena (no malloc at all) when the thread is not already using it,
/// and from 4 KiB malloc'd chunks beyond that. Keep the arena alive until packing is done
/// (`encode(_:arena:size:pack:)` does).
final class Arena {
    private let scratch: UnsafeMutablePointer<ProtobufCAllocator>? = swerve_scratch_acquire()
    // A bump allocator over malloc'd chunks, for what the scratch arena cannot hold.
    private var blocks: [UnsafeMutableRawPointer] = []
    private var cursor: UnsafeMutableRawPointer?
    private var remaining = 0
    private static let chunkSize = 4096

    deinit {
        for b in blocks { free(b) }
        swerve_scratch_release(scratch)
    }

    @inline(__always)
    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let align = max(MemoryLayout<T>.alignment, 8)
        let bytes = max(1, count) * MemoryLayout<T>.stride
        if align <= 16, let p = swerve_scratch_try_alloc(scratch, bytes) {
            return p.bindMemory(to: T.self, capacity: max(1, count))
        }
        if let c = cursor {
            let pad = (align - Int(bitPattern: c) % align) % align
            if pad + bytes <= remaining {
                let p = c + pad
                cursor = p + bytes
                remaining -= pad + bytes
                return p.bindMemory(to: T.self, capacity: max(1, count))
            }
        }
        if bytes > Self.chunkSize / 2 {
            // Large payloads (tensor bytes) get their own block; the current chunk stays in use.
            let raw = malloc(bytes)!
            blocks.append(raw)
            return raw.bindMemory(to: T.self, capacity: max(1, count))
        }
        let raw = malloc(Self.chunkSize)!
        blocks.append(raw)
        cursor = raw + bytes
        remaining = Self.chunkSize - bytes
        return raw.bindMemory(to: T.self, capacity: max(1, count))
    }

    /// A NUL-terminated copy of `s`; the empty string maps to protobuf-c's shared empty string.
    func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
        if s.isEmpty { return UnsafeMutablePointer(mutating: swerve_pb_empty_string()) }
        // Native strings (all of ours) lend their UTF-8 in place; `var copy = s; copy.withUTF8`
        // would retain and release the string on every call (six strings per ModelInfer answer).
        if let p = s.utf8.withContiguousStorageIfAvailable({ copy($0) }) { return p }
        var s = s
        return s.withUTF8 { copy($0) }
    }

    @inline(__always)
    private func copy(_ utf8: UnsafeBufferPointer<UInt8>) -> UnsafeMutablePointer<CChar> {
        let p = allocate(CChar.self, count: utf8.count + 1)
        if utf8.count > 0 { UnsafeMutableRawPointer(p).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count) }
        p[utf8.count] = 0
        return p
    }

    /// A C array holding `values`, or nil when empty (protobuf-c reads n_* first).
    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        if values.isEmpty { return nil }
        let p = allocate(T.self, count: values.count)
        values.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: $0.count) }
        return p
    }

    /// A C array holding `values`, or nil when empty, written in place: a lazily mapped
    /// collection (widened or converted values) needs no Swift array in between.
    func array<C: Collection>(_ values: C) -> UnsafeMutablePointer<C.Element>? {
        let n = values.count
        if n == 0 { return nil }
        let p = allocate(C.Element.self, count: n)
        _ = UnsafeMutableBufferPointer(start: p, count: n).initialize(fromContentsOf: values)
        return p
    }

    /// A C array of `bytes` fields holding `values`, or nil when empty. A loop rather than a
    /// lazy map: a closure that captures the arena would make it escape, and the arena object
    /// would then be heap-allocated on every encode instead of living on the stack.
    func binaries(_ values: [[UInt8]]) -> UnsafeMutablePointer<ProtobufCBinaryData>? {
        if values.isEmpty { return nil }
        let p = allocate(ProtobufCBinaryData.self, count: values.count)
        // By index: `enumerated()` would copy (retain and release) every element.
        for i in values.indices { (p + i).initialize(to: binary(values[i])) }
        return p
    }

    func cStrings(_ values: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        array(values.map { Optional(cString($0)) })
    }

    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        if bytes.isEmpty { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocate(UInt8.self, count: bytes.count)
        bytes.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: $0.count) }
        return ProtobufCBinaryData(len: bytes.count, data: p)
    }

    /// A heap copy of a built struct, for message-typed fields and repeated messages.
    func box<T>(_ value: T) -> UnsafeMutablePointer<T> {
        let p = allocate(T.self, count: 1)
        p.initialize(to: value)
        return p
    }

    func boxes<T>(_ values: [T]) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?>? {
        array(values.map { Optional(box($0)) })
    }
}

// MARK: - Reading unpacked structs

@inline(__always)
func str(_ p: UnsafeMutablePointer<CChar>?) -> String {
    // Empty is the common case (a request's version and id): no trip through UTF-8 validation.
    guard let p, p.pointee != 0 else { return "" }
    return String(cString: p)
}

@inline(__always)
func strs(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
    guard let p, n > 0 else { return [] }
    return (0..<n).map { str(p[$0]) }
}

@inline(__always)
func vals<T>(_ n: Int, _ p: UnsafeMutablePointer<T>?) -> [T] {
    guard let p, n > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

@inline(__always)
func bytesOf(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard let d = b.data, b.len > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: d, count: b.len))
}

@inline(__always)
func msgs<T, R>(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ f: (T) throws -> R) rethrows -> [R] {
    guard let p, n > 0 else { return [] }
    var out: [R] = []
    out.reserveCapacity(n)
    for i in 0..<n { if let m = p[i] { out.append(try f(m.pointee)) } }
    return out
}

/// Unpacks `bytes` with a generated `*__unpack`, reads it with `read`, then frees it.
func decode<T, R>(
    _ bytes: [UInt8], _ name: String,
    unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<T>?,
    free freeFn: (UnsafeMutablePointer<T>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void,
    read: (T) throws -> R
) throws -> R {
    try bytes.withUnsafeBufferPointer { buf in
        try decode(UnsafeRawBufferPointer(buf), name, unpack: unpack, free: freeFn) { try read($0.pointee) }
    }
}

/// The most memory protobuf-c may allocate to unpack a message of `byteCount` bytes: 32 times
/// its size plus 64 KiB. protobuf-c's own scan takes ~32 bytes per field while it unpacks, so
/// real messages with many small fields need up to ~16 times (BYTES contents of one-byte
/// elements: 3 bytes of wire, 48 of memory); a message of two-byte empty sub-messages needed
/// ~64 times (scan entry, pointer and a ~90-byte struct each): a 4 MiB request took ~256 MiB.
func decodeBudget(_ byteCount: Int) -> Int { 32 * byteCount + 64 * 1024 }

/// Unpacks `bytes` into the thread's scratch arena (malloc when it is in use), hands the
/// unpacked struct to `read` (valid only during the call), then frees it. Unpacking may take
/// at most `decodeBudget(bytes.count)` bytes; a message that needs more is refused.
func decode<T, R>(
    _ bytes: UnsafeRawBufferPointer, _ name: String,
    unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<T>?,
    free freeFn: (UnsafeMutablePointer<T>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void,
    read: (UnsafeMutablePointer<T>) throws -> R
) throws -> R {
    let scratch = swerve_scratch_acquire()
    defer { swerve_scratch_release(scratch) }
    // On the stack: protobuf-c keeps the pointer until the message is freed, within this call.
    return try withUnsafeTemporaryAllocation(of: swerve_bounded_allocator.self, capacity: 1) { storage in
        let bounded = storage.baseAddress!
        swerve_bounded_init(bounded, scratch, decodeBudget(bytes.count))
        let allocator = UnsafeMutableRawPointer(bounded).assumingMemoryBound(to: ProtobufCAllocator.self)
        // protobuf-c needs a non-NULL pointer even for an empty message.
        var zero: UInt8 = 0
        let msg: UnsafeMutablePointer<T>? = bytes.isEmpty
            ? withUnsafePointer(to: &zero) { unpack(allocator, 0, $0) }
            : unpack(allocator, bytes.count, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
        guard let msg else {
            if bounded.pointee.refused != 0 {
                throw ProtoDecodingError(
                    "could not decode \(name): its \(bytes.count) bytes would take more than \(decodeBudget(bytes.count)) bytes of memory to decode (too many fields or sub-messages)")
            }
            throw ProtoDecodingError("could not decode \(name): the bytes are not a valid protobuf encoding of it")
        }
        defer { freeFn(msg, allocator) }
        return try read(msg)
    }
}

/// Packs a built struct with the generated `*__get_packed_size` / `*__pack`.
/// `arena` (the memory `value` points into) is kept alive until packing is done.
func encode<T>(
    _ value: T, arena: Arena? = nil,
    size: (UnsafePointer<T>?) -> Int,
    pack: (UnsafePointer<T>?, UnsafeMutablePointer<UInt8>?) -> Int
) -> [UInt8] {
    defer { withExtendedLifetime(arena) {} }
    return withUnsafePointer(to: value) { p in
        let n = size(p)
        if n == 0 { return [] }
        // Small messages built in an arena are packed into it and copied out:
        // `[UInt8](unsafeUninitializedCapacity:)` calls the standard library's unspecialized
        // allocation, a type-metadata lookup per message, which costs more than copying a
        // response of a few hundred bytes.
        if n <= 16 * 1024, let arena {
            let bytes = arena.allocate(UInt8.self, count: n)
            return Array(UnsafeBufferPointer(start: bytes, count: pack(p, bytes)))
        }
        return [UInt8](unsafeUninitializedCapacity: n) { buf, count in
            count = pack(p, buf.baseAddress)
        }
    }
}

// MARK: - Strings with NUL bytes

/// Which fields of a message are `string`s and which hold nested messages. protobuf-c hands
/// strings to C as NUL-terminated, so "dense\0junk" would silently read as "dense"; requests whose
/// strings hold a NUL byte are refused instead, which needs a look at the wire bytes.
struct StringFields: Sendable {
    /// One message's fields, flattened so a walk touches no references (the walk runs on every
    /// ModelInfer request): bit f of `strings` set means field f is a string, of `nested` that it
    /// holds a message, whose node is `nodes[children + (fields of `nested` below f)]`.
    private struct Node {
        var strings: UInt64
        var nested: UInt64
        var children: Int
    }
    /// The message's node first.
    private let nodes: [Node]

    init(strings: Set<UInt64> = [], nested: [UInt64: StringFields] = [:]) {
        precondition(strings.allSatisfy { $0 < 64 } && nested.keys.allSatisfy { $0 < 64 },
                     "StringFields: field numbers must be below 64")
        var nodes = [Node(strings: strings.reduce(0) { $0 | (1 << $1) },
                          nested: nested.keys.reduce(0) { $0 | (1 << $1) }, children: 1)]
        // Children in field order right after the root, then each child's own subtree, with
        // its child indices moved past what precedes it.
        let ordered = nested.sorted { $0.key < $1.key }.map(\.value)
        var offset = 1 + ordered.count
        var subtrees: [Node] = []
        for child in ordered {
            var own = child.nodes
            for i in own.indices { own[i].children += offset - 1 }
            // The child's root goes in the children block; the rest after it.
            nodes.append(own[0])
            subtrees += own.dropFirst()
            offset += own.count - 1
        }
        self.nodes = nodes + subtrees
    }

    static let parameterMap = StringFields(strings: [1], nested: [2: StringFields(strings: [3])])
    /// ModelInferRequest: model_name, model_version, id, parameters, inputs (name, datatype,
    /// parameters), outputs (name, parameters).
    static let modelInferRequest = StringFields(strings: [1, 2, 3], nested: [
        4: parameterMap,
        5: StringFields(strings: [1, 2], nested: [4: parameterMap]),
        6: StringFields(strings: [1], nested: [2: parameterMap]),
    ])
    /// Requests made of string fields 1 and 2 (name/version, repository/model name).
    static let firstTwo = StringFields(strings: [1, 2])

    /// True when a string field (at any depth) contains a NUL byte. Malformed input returns false:
    /// protobuf-c rejects it on its own.
    func containsNUL(in bytes: UnsafeRawBufferPointer) -> Bool {
        nodes.withUnsafeBufferPointer { Self.containsNUL(in: bytes, node: 0, of: $0) }
    }

    private static func containsNUL(in bytes: UnsafeRawBufferPointer, node: Int, of nodes: UnsafeBufferPointer<Node>) -> Bool {
        let here = nodes[node]
        var i = 0
        let n = bytes.count
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while i < n && shift < 64 {
                let b = bytes[i]
                i += 1
                value |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return value }
                shift += 7
            }
            return nil
        }
        while i < n {
            guard let tag = varint() else { return false }
            let field = tag >> 3
            switch tag & 7 {
            case 0: guard varint() != nil else { return false }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let len = varint(), len <= UInt64(n - i) else { return false }
                let body = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + Int(len))])
                if field < 64 {
                    let bit: UInt64 = 1 << field
                    if here.strings & bit != 0, !body.isEmpty, memchr(body.baseAddress!, 0, body.count) != nil {
                        return true
                    }
                    if here.nested & bit != 0,
                        containsNUL(in: body, node: here.children + (here.nested & (bit - 1)).nonzeroBitCount, of: nodes) {
                        return true
                    }
                }
                i += Int(len)
            default: return false
            }
        }
        return false
    }

    func check(_ bytes: [UInt8], _ name: String) throws {
        if bytes.withUnsafeBytes({ containsNUL(in: $0) }) {
            throw ProtoDecodingError("\(name) has a string field containing a NUL byte")
        }
    }
}

extension ProtoDecodingError: RPCErrorConvertible {
    /// A request that does not decode is the caller's to fix.
    public var rpcErrorCode: GRPCStatusCode { .invalidArgument }
    public var rpcErrorMessage: String { message }
}
