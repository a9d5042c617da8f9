// The one representation of a tensor's element values, shared by the protocol types, the
// inference core (its `TensorData`) and the client, with the one implementation of each of
// the protocol's two layouts for them: raw contents (bytes) and typed contents (proto fields).
// Anything that reads or writes tensor values on the wire goes through this file, so the
// layouts cannot drift apart between the server, the core and the client.

/// The elements of a tensor, row-major, each case in its element type's own Swift type.
///
/// One case per element type the Open Inference Protocol carries, FP16 and BF16 aside (no
/// Swift type here holds them). The inference core computes with a subset; it names this type
/// `TensorData`.
public enum TensorValues: Sendable, Equatable {
    case bool([Bool])
    case int8([Int8])
    case int16([Int16])
    case int32([Int32])
    case int64([Int64])
    case uint8([UInt8])
    case uint16([UInt16])
    case uint32([UInt32])
    case uint64([UInt64])
    case fp32([Float])
    case fp64([Double])
    case bytes([[UInt8]])

    /// The element types, named as KServe v2 names them (a tensor's `datatype`).
    public enum ElementType: String, Sendable, CaseIterable {
        case bool = "BOOL"
        case int8 = "INT8"
        case int16 = "INT16"
        case int32 = "INT32"
        case int64 = "INT64"
        case uint8 = "UINT8"
        case uint16 = "UINT16"
        case uint32 = "UINT32"
        case uint64 = "UINT64"
        case fp32 = "FP32"
        case fp64 = "FP64"
        case bytes = "BYTES"

        /// Bytes per element in the raw layout (and in memory); nil for BYTES, whose elements
        /// vary in length.
        public var byteSize: Int? {
            switch self {
            case .bool, .int8, .uint8: 1
            case .int16, .uint16: 2
            case .int32, .uint32, .fp32: 4
            case .int64, .uint64, .fp64: 8
            case .bytes: nil
            }
        }

        /// The `InferTensorContents` field this type travels in as typed contents. The protocol
        /// has no 8- or 16-bit fields: INT8 and INT16 widen into `int_contents`, UINT8 and
        /// UINT16 into `uint_contents`.
        public var contentsField: String {
            switch self {
            case .bool: "bool_contents"
            case .int8, .int16, .int32: "int_contents"
            case .int64: "int64_contents"
            case .uint8, .uint16, .uint32: "uint_contents"
            case .uint64: "uint64_contents"
            case .fp32: "fp32_contents"
            case .fp64: "fp64_contents"
            case .bytes: "bytes_contents"
            }
        }
    }

    /// The element type.
    @inlinable
    public var elementType: ElementType {
        switch self {
        case .bool: .bool
        case .int8: .int8
        case .int16: .int16
        case .int32: .int32
        case .int64: .int64
        case .uint8: .uint8
        case .uint16: .uint16
        case .uint32: .uint32
        case .uint64: .uint64
        case .fp32: .fp32
        case .fp64: .fp64
        case .bytes: .bytes
        }
    }

    /// The number of elements.
    @inlinable @inline(__always)
    public var count: Int {
        switch self {
        case .bool(let v): v.count
        case .int8(let v): v.count
        case .int16(let v): v.count
        case .int32(let v): v.count
        case .int64(let v): v.count
        case .uint8(let v): v.count
        case .uint16(let v): v.count
        case .uint32(let v): v.count
        case .uint64(let v): v.count
        case .fp32(let v): v.count
        case .fp64(let v): v.count
        case .bytes(let v): v.count
        }
    }

    /// The number of elements of `shape`. Throws for a negative dimension or a product that
    /// does not fit in an `Int` (a peer's shape is not to be trusted). One pass: it runs for
    /// every tensor of every request.
    @inline(__always)
    static func elementCount(_ shape: [Int]) throws(ProtoDecodingError) -> Int {
        var count = 1
        var signs = 0  // negative once any dimension is
        var overflow = false
        for d in shape {
            signs |= d
            let (product, o) = count.multipliedReportingOverflow(by: d)
            if o { overflow = true }
            count = product
        }
        // A negative dimension is reported before an overflow, wherever each occurs.
        if signs < 0 { throw ProtoDecodingError("negative dimension in shape \(shape)") }
        if overflow { throw ProtoDecodingError("shape \(shape) holds too many elements") }
        return count
    }
}

// MARK: - Code generic over the element type

/// The Swift type of one tensor element: one conforming type per `TensorValues` case. It lets
/// code that does the same for every element type (slicing, joining, copying) be written once,
/// generically, instead of as one switch arm per case.
public protocol TensorElement: Sendable, Equatable {
    /// Values holding `elements`.
    static func values(_ elements: [Self]) -> TensorValues
    /// The elements of `values` when they are of this type, else nil.
    static func elements(of values: TensorValues) -> [Self]?
}

/// A computation over a tensor's elements that is the same for every element type; see
/// `TensorValues.visit(_:)`.
public protocol TensorValuesVisitor {
    associatedtype Result
    /// The result for `elements`, in their own type.
    func visit<Element: TensorElement>(_ elements: [Element]) -> Result
}

extension TensorValues {
    /// Hands the elements, in their own type, to `visitor`: the one switch over the cases that
    /// generic code needs.
    @inlinable
    public func visit<V: TensorValuesVisitor>(_ visitor: V) -> V.Result {
        switch self {
        case .bool(let v): visitor.visit(v)
        case .int8(let v): visitor.visit(v)
        case .int16(let v): visitor.visit(v)
        case .int32(let v): visitor.visit(v)
        case .int64(let v): visitor.visit(v)
        case .uint8(let v): visitor.visit(v)
        case .uint16(let v): visitor.visit(v)
        case .uint32(let v): visitor.visit(v)
        case .uint64(let v): visitor.visit(v)
        case .fp32(let v): visitor.visit(v)
        case .fp64(let v): visitor.visit(v)
        case .bytes(let v): visitor.visit(v)
        }
    }

    /// The elements in `ranges`, one range after the other, as values of the same type: a
    /// slice (one range) or a gather of row runs.
    @inlinable
    public func gathering<Ranges: Collection<Range<Int>>>(_ ranges: Ranges) -> TensorValues {
        visit(Gather(ranges: ranges))
    }

    /// `parts` joined in order. All parts must hold the same element type; there must be at
    /// least one.
    @inlinable
    public static func concatenating<Parts: Collection<TensorValues>>(_ parts: Parts) -> TensorValues {
        precondition(!parts.isEmpty, "concatenating needs at least one part")
        return parts.first!.visit(Concatenate(parts: parts))
    }

    /// Calls `body` with the elements' memory, or returns nil for BYTES (whose elements are
    /// separate arrays). Bool is one byte, 0 or 1; on a little-endian host this memory is the
    /// raw layout.
    @inlinable
    public func withUnsafeElementBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        switch self {
        case .bool(let v): try v.withUnsafeBytes(body)
        case .int8(let v): try v.withUnsafeBytes(body)
        case .int16(let v): try v.withUnsafeBytes(body)
        case .int32(let v): try v.withUnsafeBytes(body)
        case .int64(let v): try v.withUnsafeBytes(body)
        case .uint8(let v): try v.withUnsafeBytes(body)
        case .uint16(let v): try v.withUnsafeBytes(body)
        case .uint32(let v): try v.withUnsafeBytes(body)
        case .uint64(let v): try v.withUnsafeBytes(body)
        case .fp32(let v): try v.withUnsafeBytes(body)
        case .fp64(let v): try v.withUnsafeBytes(body)
        case .bytes: nil
        }
    }
}

@usableFromInline
struct Gather<Ranges: Collection<Range<Int>>>: TensorValuesVisitor {
    @usableFromInline let ranges: Ranges
    @inlinable init(ranges: Ranges) { self.ranges = ranges }

    @inlinable
    func visit<Element: TensorElement>(_ elements: [Element]) -> TensorValues {
        if ranges.count == 1 { return Element.values(Array(elements[ranges.first!])) }
        var out: [Element] = []
        out.reserveCapacity(ranges.reduce(0) { $0 + $1.count })
        for r in ranges { out.append(contentsOf: elements[r]) }
        return Element.values(out)
    }
}

@usableFromInline
struct Concatenate<Parts: Collection<TensorValues>>: TensorValuesVisitor {
    @usableFromInline let parts: Parts
    @inlinable init(parts: Parts) { self.parts = parts }

    @inlinable
    func visit<Element: TensorElement>(_ first: [Element]) -> TensorValues {
        if parts.count == 1 { return Element.values(first) }
        var out: [Element] = []
        out.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for p in parts {
            guard let elements = Element.elements(of: p) else {
                preconditionFailure("concatenating \(p.elementType.rawValue) values onto \(Element.values([]).elementType.rawValue) values")
            }
            out.append(contentsOf: elements)
        }
        return Element.values(out)
    }
}

extension Bool: TensorElement {
    @inlinable public static func values(_ elements: [Bool]) -> TensorValues { .bool(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [Bool]? { if case .bool(let v) = values { v } else { nil } }
}
extension Int8: TensorElement {
    @inlinable public static func values(_ elements: [Int8]) -> TensorValues { .int8(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [Int8]? { if case .int8(let v) = values { v } else { nil } }
}
extension Int16: TensorElement {
    @inlinable public static func values(_ elements: [Int16]) -> TensorValues { .int16(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [Int16]? { if case .int16(let v) = values { v } else { nil } }
}
extension Int32: TensorElement {
    @inlinable public static func values(_ elements: [Int32]) -> TensorValues { .int32(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [Int32]? { if case .int32(let v) = values { v } else { nil } }
}
extension Int64: TensorElement {
    @inlinable public static func values(_ elements: [Int64]) -> TensorValues { .int64(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [Int64]? { if case .int64(let v) = values { v } else { nil } }
}
extension UInt8: TensorElement {
    @inlinable public static func values(_ elements: [UInt8]) -> TensorValues { .uint8(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [UInt8]? { if case .uint8(let v) = values { v } else { nil } }
}
extension UInt16: TensorElement {
    @inlinable public static func values(_ elements: [UInt16]) -> TensorValues { .uint16(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [UInt16]? { if case .uint16(let v) = values { v } else { nil } }
}
extension UInt32: TensorElement {
    @inlinable public static func values(_ elements: [UInt32]) -> TensorValues { .uint32(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [UInt32]? { if case .uint32(let v) = values { v } else { nil } }
}
extension UInt64: TensorElement {
    @inlinable public static func values(_ elements: [UInt64]) -> TensorValues { .uint64(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [UInt64]? { if case .uint64(let v) = values { v } else { nil } }
}
extension Float: TensorElement {
    @inlinable public static func values(_ elements: [Float]) -> TensorValues { .fp32(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [Float]? { if case .fp32(let v) = values { v } else { nil } }
}
extension Double: TensorElement {
    @inlinable public static func values(_ elements: [Double]) -> TensorValues { .fp64(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [Double]? { if case .fp64(let v) = values { v } else { nil } }
}
extension Array: TensorElement where Element == UInt8 {
    @inlinable public static func values(_ elements: [[UInt8]]) -> TensorValues { .bytes(elements) }
    @inlinable public static func elements(of values: TensorValues) -> [[UInt8]]? { if case .bytes(let v) = values { v } else { nil } }
}

// MARK: - Raw layout

// KServe's `raw_input_contents` / `raw_output_contents`: each element little-endian at its
// type's own width, BOOL one byte (0 or 1), and each BYTES element a 4-byte little-endian
// length followed by its bytes.

extension TensorValues {
    /// The longest BYTES element the raw layout's 4-byte length prefix can describe.
    public static let maxRawBytesElementCount = Int(UInt32.max)

    /// The size of the values in the raw layout.
    @inline(__always)
    public var rawByteCount: Int {
        switch self {
        case .bool(let v): v.count
        case .int8(let v): v.count
        case .int16(let v): v.count * 2
        case .int32(let v): v.count * 4
        case .int64(let v): v.count * 8
        case .uint8(let v): v.count
        case .uint16(let v): v.count * 2
        case .uint32(let v): v.count * 4
        case .uint64(let v): v.count * 8
        case .fp32(let v): v.count * 4
        case .fp64(let v): v.count * 8
        case .bytes(let v): v.reduce(0) { $0 + 4 + $1.count }
        }
    }

    /// Writes the values in the raw layout to `destination`, which must hold exactly
    /// `rawByteCount` bytes. Every BYTES element must be at most `maxRawBytesElementCount` long.
    @inline(__always)
    public func writeRaw(to destination: UnsafeMutableRawBufferPointer) {
        // Fixed-width elements (and Bool, one byte 0 or 1) are their memory on a little-endian
        // host: one copy. A direct switch, not `withUnsafeElementBytes`: this runs for every
        // output of every raw response.
        @inline(__always) func copy<Element>(_ v: [Element]) {
            v.withUnsafeBytes { source in
                precondition(source.count == destination.count, "writeRaw: \(source.count) bytes into a buffer of \(destination.count)")
                if source.count > 0 { destination.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: source.count) }
            }
            #if _endian(big)
            reverseEachElement(destination, width: MemoryLayout<Element>.size)
            #endif
        }
        switch self {
        case .bool(let v): copy(v)
        case .int8(let v): copy(v)
        case .int16(let v): copy(v)
        case .int32(let v): copy(v)
        case .int64(let v): copy(v)
        case .uint8(let v): copy(v)
        case .uint16(let v): copy(v)
        case .uint32(let v): copy(v)
        case .uint64(let v): copy(v)
        case .fp32(let v): copy(v)
        case .fp64(let v): copy(v)
        case .bytes(let v): Self.writeRawByteStrings(v, to: destination)
        }
    }

    /// BYTES elements, each after its 4-byte little-endian length.
    private static func writeRawByteStrings(_ elements: [[UInt8]], to destination: UnsafeMutableRawBufferPointer) {
        var offset = 0
        for element in elements {
            precondition(element.count <= maxRawBytesElementCount, "a BYTES element of \(element.count) bytes is too long for the raw layout")
            precondition(offset + 4 + element.count <= destination.count, "writeRaw: BYTES values overrun a buffer of \(destination.count) bytes")
            destination.storeBytes(of: UInt32(element.count).littleEndian, toByteOffset: offset, as: UInt32.self)
            offset += 4
            element.withUnsafeBytes { bytes in
                if bytes.count > 0 { (destination.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
            }
            offset += element.count
        }
        precondition(offset == destination.count, "writeRaw: \(offset) bytes into a buffer of \(destination.count)")
    }

    /// The values in the raw layout. Every BYTES element must be at most
    /// `maxRawBytesElementCount` long.
    public var rawBytes: [UInt8] {
        let n = rawByteCount
        return [UInt8](unsafeUninitializedCapacity: n) { buffer, initialized in
            writeRaw(to: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[0..<n]))
            initialized = n
        }
    }

    /// Values of `type` and `shape` read from the raw layout in `rawBytes`, which is not kept.
    /// Throws when the byte count does not match the shape, or a BYTES length prefix or element
    /// runs past the end, or bytes are left after the last BYTES element. `shape` is borrowed
    /// (an initializer's parameters are otherwise passed owned, which costs callers that keep
    /// the shape a retain per tensor).
    public init(rawBytes: UnsafeRawBufferPointer, as type: ElementType, shape: borrowing [Int]) throws(ProtoDecodingError) {
        let count = try Self.elementCount(shape)
        guard let size = type.byteSize else {
            self = .bytes(try Self.rawByteStrings(rawBytes, count: count, shape: shape))
            return
        }
        let (needed, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow else { throw ProtoDecodingError("shape \(shape) holds too many elements") }
        guard rawBytes.count == needed else {
            throw ProtoDecodingError("\(type.rawValue) tensor of shape \(shape) needs \(needed) bytes, got \(rawBytes.count)")
        }
        // Fixed-width elements are the host's memory layout on a little-endian host: one copy.
        // Always inlined, so each call is specialized. Aligned bytes (protobuf-c's and Swift's
        // buffers are) are copied as a buffer of elements, which allocates the array without a
        // run-time type-metadata lookup; `init(unsafeUninitializedCapacity:)` does that lookup
        // on every call, and is left for bytes that are not aligned.
        @inline(__always) func load<Element>(_: Element.Type) -> [Element] {
            guard count > 0 else { return [] }
            var elements: [Element]
            if Int(bitPattern: rawBytes.baseAddress) % MemoryLayout<Element>.alignment == 0 {
                elements = rawBytes.withMemoryRebound(to: Element.self) { Array($0) }
            } else {
                elements = [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: rawBytes)
                    initialized = count
                }
            }
            #if _endian(big)
            elements.withUnsafeMutableBytes { reverseEachElement($0, width: size) }
            #endif
            return elements
        }
        switch type {
        case .bool: self = .bool(rawBytes.map { $0 != 0 })  // any non-zero byte is true
        case .int8: self = .int8(load(Int8.self))
        case .int16: self = .int16(load(Int16.self))
        case .int32: self = .int32(load(Int32.self))
        case .int64: self = .int64(load(Int64.self))
        case .uint8: self = .uint8(Array(rawBytes))
        case .uint16: self = .uint16(load(UInt16.self))
        case .uint32: self = .uint32(load(UInt32.self))
        case .uint64: self = .uint64(load(UInt64.self))
        case .fp32: self = .fp32(load(Float.self))
        case .fp64: self = .fp64(load(Double.self))
        case .bytes: preconditionFailure("BYTES has no fixed width")
        }
    }

    /// `count` length-prefixed BYTES elements that fill `raw` exactly.
    private static func rawByteStrings(_ raw: UnsafeRawBufferPointer, count: Int, shape: [Int]) throws(ProtoDecodingError) -> [[UInt8]] {
        var elements: [[UInt8]] = []
        // Every element takes at least its 4-byte prefix: a huge shape over few bytes fails
        // below without reserving memory for elements that cannot be there.
        elements.reserveCapacity(min(count, raw.count / 4))
        var offset = 0
        while elements.count < count {
            guard offset + 4 <= raw.count else {
                throw ProtoDecodingError("BYTES tensor of shape \(shape): length prefix of element \(elements.count) runs past the end")
            }
            let n = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            offset += 4
            guard offset + n <= raw.count else {
                throw ProtoDecodingError("BYTES tensor of shape \(shape): element \(elements.count) of \(n) bytes runs past the end")
            }
            elements.append(Array(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + n)])))
            offset += n
        }
        guard offset == raw.count else {
            throw ProtoDecodingError("BYTES tensor of shape \(shape): \(raw.count - offset) bytes left after \(count) elements")
        }
        return elements
    }
}

#if _endian(big)
/// Turns host-order elements of `width` bytes into little-endian ones, or back.
private func reverseEachElement(_ buffer: UnsafeMutableRawBufferPointer, width: Int) {
    guard width > 1 else { return }
    var start = 0
    while start + width <= buffer.count {
        var (i, j) = (start, start + width - 1)
        while i < j { buffer.swapAt(i, j); i += 1; j -= 1 }
        start += width
    }
}
#endif

// MARK: - Typed contents

// The typed layout: all of a tensor's values in the one `InferTensorContents` field its type
// travels in (`ElementType.contentsField`), 8- and 16-bit integers widened to 32 bits, and
// narrowed back with a range check on the way in.

extension TensorValues {
    /// The one writing of typed contents: the values into the field their type travels in,
    /// INT8/INT16 widened to `int_contents` and UINT8/UINT16 to `uint_contents` as they are
    /// written, wherever the fields are held. `context` goes to the writer's setters as an
    /// argument (the response encoder's arena), so the writer need not store it: a stored
    /// reference would be retained per output and could make the arena escape to the heap.
    /// Always inlined, for the same reason.
    @inline(__always)
    func writeTypedContents<Writer: TypedContentsWriter>(to writer: inout Writer, _ context: Writer.Context) {
        switch self {
        case .bool(let v): writer.setBoolContents(v, context)
        case .int8(let v): writer.setIntContents(v.lazy.map { Int32($0) }, context)
        case .int16(let v): writer.setIntContents(v.lazy.map { Int32($0) }, context)
        case .int32(let v): writer.setIntContents(v, context)
        case .int64(let v): writer.setInt64Contents(v, context)
        case .uint8(let v): writer.setUIntContents(v.lazy.map { UInt32($0) }, context)
        case .uint16(let v): writer.setUIntContents(v.lazy.map { UInt32($0) }, context)
        case .uint32(let v): writer.setUIntContents(v, context)
        case .uint64(let v): writer.setUInt64Contents(v, context)
        case .fp32(let v): writer.setFP32Contents(v, context)
        case .fp64(let v): writer.setFP64Contents(v, context)
        case .bytes(let v): writer.setBytesContents(v, context)
        }
    }
}

/// Where typed contents are written: the Swift message, or (the response encoder) the
/// protobuf-c struct, directly, with no Swift message in between.
protocol TypedContentsWriter {
    /// What every setter needs besides the values (the encoder's arena; nothing for the message).
    associatedtype Context
    mutating func setBoolContents(_ values: [Bool], _ context: Context)
    mutating func setIntContents(_ values: some Collection<Int32>, _ context: Context)
    mutating func setInt64Contents(_ values: [Int64], _ context: Context)
    mutating func setUIntContents(_ values: some Collection<UInt32>, _ context: Context)
    mutating func setUInt64Contents(_ values: [UInt64], _ context: Context)
    mutating func setFP32Contents(_ values: [Float], _ context: Context)
    mutating func setFP64Contents(_ values: [Double], _ context: Context)
    mutating func setBytesContents(_ values: [[UInt8]], _ context: Context)
}

extension InferTensorContents: TypedContentsWriter {
    /// `values` as typed contents: in the field their type travels in, INT8/INT16 widened to
    /// `int_contents` and UINT8/UINT16 to `uint_contents`.
    public init(_ values: TensorValues) {
        self.init()
        values.writeTypedContents(to: &self, ())
    }

    mutating func setBoolContents(_ values: [Bool], _: Void) { boolContents = values }
    mutating func setIntContents(_ values: some Collection<Int32>, _: Void) { intContents = Array(values) }
    mutating func setInt64Contents(_ values: [Int64], _: Void) { int64Contents = values }
    mutating func setUIntContents(_ values: some Collection<UInt32>, _: Void) { uintContents = Array(values) }
    mutating func setUInt64Contents(_ values: [UInt64], _: Void) { uint64Contents = values }
    mutating func setFP32Contents(_ values: [Float], _: Void) { fp32Contents = values }
    mutating func setFP64Contents(_ values: [Double], _: Void) { fp64Contents = values }
    mutating func setBytesContents(_ values: [[UInt8]], _: Void) { bytesContents = values }
}

extension TensorValues {
    /// Values of `type` and `shape` from typed contents. Throws when a value does not fit the
    /// type's width, when a field other than the type's holds values, or when the count does
    /// not match the shape.
    public init(contents: InferTensorContents, as type: ElementType, shape: borrowing [Int]) throws(ProtoDecodingError) {
        try self.init(fields: contents, as: type, shape: shape)
    }

    /// Values of `type` and `shape` read in place from a request's typed contents (nil when the
    /// input has none), copied once into their own type. Throws as
    /// `init(contents:as:shape:)` does.
    public init(contents: InferContentsView?, as type: ElementType, shape: borrowing [Int]) throws(ProtoDecodingError) {
        if let contents {
            try self.init(fields: ContentsViewFields(view: contents), as: type, shape: shape)
        } else {
            try self.init(fields: InferTensorContents(), as: type, shape: shape)
        }
    }

    /// The one reading of typed contents, wherever their fields are held. Each type checks
    /// first, in the order the server has always reported problems (a value out of range,
    /// values in another field, a count that does not match the shape), then copies once.
    @inline(__always)
    private init<Fields: TypedContentsFields>(fields c: Fields, as type: ElementType, shape: borrowing [Int]) throws(ProtoDecodingError) {
        let elements = try Self.elementCount(shape)
        @inline(__always) func checkRange<Narrow: FixedWidthInteger>(_ wide: some Collection<some BinaryInteger>, _: Narrow.Type) throws(ProtoDecodingError) {
            guard wide.allSatisfy({ Narrow(exactly: $0) != nil }) else { throw ProtoDecodingError("\(type.rawValue) value out of range") }
        }
        @inline(__always) func checkCount(_ used: Int) throws(ProtoDecodingError) {
            guard used == c.count else {
                throw ProtoDecodingError("\(type.rawValue) values must be in the \(type.contentsField) field of contents only")
            }
            guard used == elements else { throw ProtoDecodingError("shape \(shape) needs \(elements) values, got \(used)") }
        }
        switch type {
        case .bool:
            let f = c.boolContents
            try checkCount(f.count)
            self = .bool(Array(f))
        case .int8:
            let f = c.intContents
            try checkRange(f, Int8.self)
            try checkCount(f.count)
            self = .int8(f.map { Int8(truncatingIfNeeded: $0) })
        case .int16:
            let f = c.intContents
            try checkRange(f, Int16.self)
            try checkCount(f.count)
            self = .int16(f.map { Int16(truncatingIfNeeded: $0) })
        case .int32:
            let f = c.intContents
            try checkCount(f.count)
            self = .int32(Array(f))
        case .int64:
            let f = c.int64Contents
            try checkCount(f.count)
            self = .int64(Array(f))
        case .uint8:
            let f = c.uintContents
            try checkRange(f, UInt8.self)
            try checkCount(f.count)
            self = .uint8(f.map { UInt8(truncatingIfNeeded: $0) })
        case .uint16:
            let f = c.uintContents
            try checkRange(f, UInt16.self)
            try checkCount(f.count)
            self = .uint16(f.map { UInt16(truncatingIfNeeded: $0) })
        case .uint32:
            let f = c.uintContents
            try checkCount(f.count)
            self = .uint32(Array(f))
        case .uint64:
            let f = c.uint64Contents
            try checkCount(f.count)
            self = .uint64(Array(f))
        case .fp32:
            let f = c.fp32Contents
            try checkCount(f.count)
            self = .fp32(Array(f))
        case .fp64:
            let f = c.fp64Contents
            try checkCount(f.count)
            self = .fp64(Array(f))
        case .bytes:
            let f = c.bytesContents
            try checkCount(f.count)
            self = .bytes(Array(f))
        }
    }
}

/// The eight fields of typed contents, read where they are held: the Swift message or, in
/// place, the protobuf-c struct a request was decoded into.
private protocol TypedContentsFields {
    associatedtype Bools: Collection<Bool>
    associatedtype Int32s: Collection<Int32>
    associatedtype Int64s: Collection<Int64>
    associatedtype UInt32s: Collection<UInt32>
    associatedtype UInt64s: Collection<UInt64>
    associatedtype Floats: Collection<Float>
    associatedtype Doubles: Collection<Double>
    associatedtype ByteStrings: Collection<[UInt8]>
    var boolContents: Bools { get }
    var intContents: Int32s { get }
    var int64Contents: Int64s { get }
    var uintContents: UInt32s { get }
    var uint64Contents: UInt64s { get }
    var fp32Contents: Floats { get }
    var fp64Contents: Doubles { get }
    var bytesContents: ByteStrings { get }
    /// Values over all eight fields.
    var count: Int { get }
}

extension InferTensorContents: TypedContentsFields {}

/// A request's contents seen through the message's field names, without copying them.
private struct ContentsViewFields: TypedContentsFields {
    let view: InferContentsView
    var boolContents: LazyMapCollection<UnsafeBufferPointer<Int32>, Bool> { view.bool.lazy.map { $0 != 0 } }
    var intContents: UnsafeBufferPointer<Int32> { view.int32 }
    var int64Contents: UnsafeBufferPointer<Int64> { view.int64 }
    var uintContents: UnsafeBufferPointer<UInt32> { view.uint32 }
    var uint64Contents: UnsafeBufferPointer<UInt64> { view.uint64 }
    var fp32Contents: UnsafeBufferPointer<Float> { view.fp32 }
    var fp64Contents: UnsafeBufferPointer<Double> { view.fp64 }
    var bytesContents: ByteStrings { ByteStrings(view: view) }
    var count: Int { view.count }

    /// The BYTES elements, each copied out when read. A collection type rather than a lazy
    /// map, whose closure would capture the view and cost a heap allocation per input.
    struct ByteStrings: RandomAccessCollection {
        let view: InferContentsView
        var startIndex: Int { 0 }
        var endIndex: Int { view.bytesCount }
        subscript(i: Int) -> [UInt8] { Array(view.bytes(i)) }
    }
}
