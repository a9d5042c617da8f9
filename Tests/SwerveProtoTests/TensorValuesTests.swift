import Testing
@testable import SwerveProto

/// The one representation of tensor values and its two wire layouts: raw bytes and typed
/// contents, for every element type, both directions, with every way a peer's input can be
/// wrong. Expected bytes and fields are written out by hand, not computed by the code under test.
@Suite struct TensorValuesTests {
    /// One sample per element type, with its extremes, its raw layout written out byte by byte,
    /// and the typed contents field (widened) it travels in.
    struct Sample: Sendable, CustomTestStringConvertible {
        let values: TensorValues
        let raw: [UInt8]
        let contents: InferTensorContents
        var testDescription: String { values.elementType.rawValue }
    }

    static func contents(_ fill: (inout InferTensorContents) -> Void) -> InferTensorContents {
        var c = InferTensorContents()
        fill(&c)
        return c
    }

    static let samples: [Sample] = [
        Sample(values: .bool([true, false, true]), raw: [1, 0, 1],
               contents: contents { $0.boolContents = [true, false, true] }),
        Sample(values: .int8([-128, -1, 0, 127]), raw: [0x80, 0xFF, 0x00, 0x7F],
               contents: contents { $0.intContents = [-128, -1, 0, 127] }),
        Sample(values: .int16([-32768, -2, 0x1234, 32767]), raw: [0x00, 0x80, 0xFE, 0xFF, 0x34, 0x12, 0xFF, 0x7F],
               contents: contents { $0.intContents = [-32768, -2, 0x1234, 32767] }),
        Sample(values: .int32([.min, -1, 0x0102_0304]),
               raw: [0x00, 0x00, 0x00, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0x04, 0x03, 0x02, 0x01],
               contents: contents { $0.intContents = [.min, -1, 0x0102_0304] }),
        Sample(values: .int64([.min, 0x0102_0304_0506_0708]),
               raw: [0, 0, 0, 0, 0, 0, 0, 0x80, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01],
               contents: contents { $0.int64Contents = [.min, 0x0102_0304_0506_0708] }),
        Sample(values: .uint8([0, 1, 255]), raw: [0x00, 0x01, 0xFF],
               contents: contents { $0.uintContents = [0, 1, 255] }),
        Sample(values: .uint16([0, 0x1234, 65535]), raw: [0x00, 0x00, 0x34, 0x12, 0xFF, 0xFF],
               contents: contents { $0.uintContents = [0, 0x1234, 65535] }),
        Sample(values: .uint32([0x0102_0304, .max]), raw: [0x04, 0x03, 0x02, 0x01, 0xFF, 0xFF, 0xFF, 0xFF],
               contents: contents { $0.uintContents = [0x0102_0304, .max] }),
        Sample(values: .uint64([.max, 1]),
               raw: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0, 0, 0, 0, 0, 0, 0],
               contents: contents { $0.uint64Contents = [.max, 1] }),
        // 1.0 = 0x3F800000, -2.5 = 0xC0200000, -0.0 = 0x80000000.
        Sample(values: .fp32([1.0, -2.5, -0.0]),
               raw: [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0, 0x00, 0x00, 0x00, 0x80],
               contents: contents { $0.fp32Contents = [1.0, -2.5, -0.0] }),
        // 1.0 = 0x3FF0000000000000, -infinity = 0xFFF0000000000000.
        Sample(values: .fp64([1.0, -.infinity]),
               raw: [0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0, 0, 0, 0, 0, 0, 0xF0, 0xFF],
               contents: contents { $0.fp64Contents = [1.0, -.infinity] }),
        Sample(values: .bytes([Array("ab".utf8), [], [0, 255]]), raw: [2, 0, 0, 0, 0x61, 0x62, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0xFF],
               contents: contents { $0.bytesContents = [Array("ab".utf8), [], [0, 255]] }),
    ]

    @Test func everyElementTypeHasASample() {
        #expect(Self.samples.map(\.values.elementType) == TensorValues.ElementType.allCases)
    }

    // MARK: - Raw layout

    @Test(arguments: samples) func rawLayoutIsLittleEndianAtEachTypesWidth(_ sample: Sample) throws {
        let values = sample.values
        #expect(values.rawBytes == sample.raw)
        #expect(values.rawByteCount == sample.raw.count)
        if let size = values.elementType.byteSize { #expect(sample.raw.count == values.count * size) }
        let back = try sample.raw.withUnsafeBytes {
            try TensorValues(rawBytes: $0, as: values.elementType, shape: [values.count])
        }
        #expect(back == values)
        // Any shape holding the same element count reads the same bytes.
        let reshaped = try sample.raw.withUnsafeBytes {
            try TensorValues(rawBytes: $0, as: values.elementType, shape: [1, values.count, 1])
        }
        #expect(reshaped == values)
    }

    @Test(arguments: TensorValues.ElementType.allCases) func emptyAndScalarShapes(_ type: TensorValues.ElementType) throws {
        let empty = try [UInt8]().withUnsafeBytes { try TensorValues(rawBytes: $0, as: type, shape: [0, 3]) }
        #expect(empty.count == 0)
        #expect(empty.elementType == type)
        #expect(empty.rawBytes.isEmpty)
        // A scalar is one element.
        let one: [UInt8] = type == .bytes ? [1, 0, 0, 0, 7] : Array(repeating: 1, count: type.byteSize!)
        let scalar = try one.withUnsafeBytes { try TensorValues(rawBytes: $0, as: type, shape: []) }
        #expect(scalar.count == 1)
        #expect(scalar.rawBytes == one)
    }

    /// Little-endian bytes written out by shifting, independent of memory layout.
    static func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { v in (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) } }
    }

    @Test(arguments: [0, 1, 2, 3, 4, 5, 6, 7])
    func alignedAndUnalignedRawBytesReadTheSame(offset: Int) throws {
        // Aligned bytes are read as a buffer of elements, unaligned ones copied as bytes: both
        // must give the same values, at every offset an 8-byte element can sit at.
        let count = 300
        let ints = (0..<count).map { Int64(truncatingIfNeeded: UInt64($0) &* 0x9E37_79B9_7F4A_7C15) }
        let doubles = (0..<count).map { Double($0) / -3 }
        let shorts = (0..<count).map { Int16(truncatingIfNeeded: $0 &* 40_503) }
        for (raw, type, expected) in [
            (Self.le(ints), TensorValues.ElementType.int64, TensorValues.int64(ints)),
            (Self.le(doubles.map(\.bitPattern)), .fp64, .fp64(doubles)),
            (Self.le(shorts), .int16, .int16(shorts)),
        ] {
            let padded = [UInt8](repeating: 0xAA, count: offset) + raw
            let values = try padded.withUnsafeBytes { buffer in
                try TensorValues(rawBytes: UnsafeRawBufferPointer(rebasing: buffer[offset...]), as: type, shape: [count])
            }
            #expect(values == expected, "\(type) at offset \(offset)")
        }
    }

    @Test func anyNonZeroByteIsTrue() throws {
        let values = try ([0, 1, 2, 0x80, 0xFF] as [UInt8]).withUnsafeBytes { try TensorValues(rawBytes: $0, as: .bool, shape: [5]) }
        #expect(values == .bool([false, true, true, true, true]))
        // And true is written back as 1.
        #expect(values.rawBytes == [0, 1, 1, 1, 1])
    }

    @Test func nanBitsSurviveRaw() throws {
        let f32 = TensorValues.fp32([Float(bitPattern: 0x7FC0_0ABC), Float(bitPattern: 0xFF80_0001)])
        #expect(f32.rawBytes == [0xBC, 0x0A, 0xC0, 0x7F, 0x01, 0x00, 0x80, 0xFF])
        let back = try f32.rawBytes.withUnsafeBytes { try TensorValues(rawBytes: $0, as: .fp32, shape: [2]) }
        guard case .fp32(let v) = back else { Issue.record("not FP32: \(back)"); return }
        #expect(v.map(\.bitPattern) == [0x7FC0_0ABC, 0xFF80_0001])
    }

    @Test func longBytesElementHasAFourByteLength() {
        let long = [UInt8](repeating: 7, count: 0x0102_03)
        #expect(Array(TensorValues.bytes([long]).rawBytes.prefix(4)) == [0x03, 0x02, 0x01, 0x00])
    }

    @Test func writeRawFillsExactlyTheBuffer() {
        for sample in Self.samples {
            var buffer = [UInt8](repeating: 0xEE, count: sample.raw.count)
            buffer.withUnsafeMutableBytes { sample.values.writeRaw(to: $0) }
            #expect(buffer == sample.raw, "\(sample.values.elementType)")
        }
    }

    /// Decodes `raw` as `type` and `shape`, expecting it to fail with `message`.
    static func expectRawError(_ raw: [UInt8], _ type: TensorValues.ElementType, _ shape: [Int], _ message: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: ProtoDecodingError.self, sourceLocation: sourceLocation) {
            try raw.withUnsafeBytes { try TensorValues(rawBytes: $0, as: type, shape: shape) }
        }
        do {
            _ = try raw.withUnsafeBytes { try TensorValues(rawBytes: $0, as: type, shape: shape) }
        } catch let error as ProtoDecodingError {
            #expect(error.message == message, sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: TensorValues.ElementType.allCases.filter { $0 != .bytes })
    func fixedWidthByteCountMustMatchTheShape(_ type: TensorValues.ElementType) {
        let size = type.byteSize!
        Self.expectRawError(Array(repeating: 0, count: 2 * size - 1), type, [2],
                            "\(type.rawValue) tensor of shape [2] needs \(2 * size) bytes, got \(2 * size - 1)")
        Self.expectRawError(Array(repeating: 0, count: 2 * size + 1), type, [1, 2],
                            "\(type.rawValue) tensor of shape [1, 2] needs \(2 * size) bytes, got \(2 * size + 1)")
        Self.expectRawError([0], type, [0], "\(type.rawValue) tensor of shape [0] needs 0 bytes, got 1")
    }

    @Test func shapesAPeerCanGetWrong() {
        Self.expectRawError([], .fp32, [2, -1], "negative dimension in shape [2, -1]")
        Self.expectRawError([], .bytes, [-3], "negative dimension in shape [-3]")
        Self.expectRawError([], .int8, [1 << 40, 1 << 40], "shape [1099511627776, 1099511627776] holds too many elements")
        // The element count fits, its bytes do not.
        Self.expectRawError([], .fp64, [1 << 61], "shape [2305843009213693952] holds too many elements")
    }

    @Test func bytesLengthPrefixErrors() {
        // The prefix itself is cut short.
        Self.expectRawError([1, 0, 0, 0, 9, 2, 0], .bytes, [2],
                            "BYTES tensor of shape [2]: length prefix of element 1 runs past the end")
        Self.expectRawError([], .bytes, [1], "BYTES tensor of shape [1]: length prefix of element 0 runs past the end")
        // The element runs past the end.
        Self.expectRawError([9, 0, 0, 0, 1], .bytes, [1], "BYTES tensor of shape [1]: element 0 of 9 bytes runs past the end")
        Self.expectRawError([0xFF, 0xFF, 0xFF, 0xFF], .bytes, [1],
                            "BYTES tensor of shape [1]: element 0 of 4294967295 bytes runs past the end")
        // Bytes after the last element the shape holds.
        Self.expectRawError([1, 0, 0, 0, 1, 0], .bytes, [1], "BYTES tensor of shape [1]: 1 bytes left after 1 elements")
        Self.expectRawError([0, 0, 0, 0], .bytes, [0], "BYTES tensor of shape [0]: 4 bytes left after 0 elements")
        // A huge shape over a few bytes fails on the bytes, without making room for the shape.
        Self.expectRawError([0, 0, 0, 0], .bytes, [1 << 40],
                            "BYTES tensor of shape [1099511627776]: length prefix of element 1 runs past the end")
    }

    // MARK: - Typed contents

    @Test(arguments: samples) func typedContentsUseTheTypesOneField(_ sample: Sample) throws {
        let contents = InferTensorContents(sample.values)
        #expect(contents == sample.contents)
        #expect(contents.count == sample.values.count)
        let type = sample.values.elementType
        let back = try TensorValues(contents: contents, as: type, shape: [sample.values.count])
        #expect(back == sample.values)
    }

    @Test func fieldNames() {
        let fields = Dictionary(uniqueKeysWithValues: TensorValues.ElementType.allCases.map { ($0.rawValue, $0.contentsField) })
        #expect(fields == [
            "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
            "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
        ])
    }

    /// Reads `contents` as `type` and `shape` through the Swift message, expecting `message`.
    static func expectTypedError(_ contents: InferTensorContents, _ type: TensorValues.ElementType, _ shape: [Int], _ message: String,
                                 sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let values = try TensorValues(contents: contents, as: type, shape: shape)
            Issue.record("read \(values)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.message == message, sourceLocation: sourceLocation)
        }
    }

    @Test func narrowingChecksTheRange() throws {
        let ints = { (v: [Int32]) in Self.contents { $0.intContents = v } }
        let uints = { (v: [UInt32]) in Self.contents { $0.uintContents = v } }
        // The extremes fit.
        #expect(try TensorValues(contents: ints([-128, 127]), as: .int8, shape: [2]) == .int8([-128, 127]))
        #expect(try TensorValues(contents: ints([-32768, 32767]), as: .int16, shape: [2]) == .int16([-32768, 32767]))
        #expect(try TensorValues(contents: uints([0, 255]), as: .uint8, shape: [2]) == .uint8([0, 255]))
        #expect(try TensorValues(contents: uints([0, 65535]), as: .uint16, shape: [2]) == .uint16([0, 65535]))
        // One past them does not, on either side.
        Self.expectTypedError(ints([0, -129]), .int8, [2], "INT8 value out of range")
        Self.expectTypedError(ints([128]), .int8, [1], "INT8 value out of range")
        Self.expectTypedError(ints([-32769]), .int16, [1], "INT16 value out of range")
        Self.expectTypedError(ints([32768, 0]), .int16, [2], "INT16 value out of range")
        Self.expectTypedError(uints([256]), .uint8, [1], "UINT8 value out of range")
        Self.expectTypedError(uints([65536]), .uint16, [1], "UINT16 value out of range")
        // The range is checked before the count: a bad value is reported even when the count is off too.
        Self.expectTypedError(ints([1000]), .int8, [3], "INT8 value out of range")
    }

    @Test func valuesMustBeInTheTypesFieldOnly() {
        var c = InferTensorContents()
        c.fp32Contents = [1]
        c.intContents = [2]
        Self.expectTypedError(c, .fp32, [1], "FP32 values must be in the fp32_contents field of contents only")
        Self.expectTypedError(c, .int8, [1], "INT8 values must be in the int_contents field of contents only")
        // INT64 values sent in int_contents are in the wrong field, not a narrower form.
        Self.expectTypedError(Self.contents { $0.intContents = [1] }, .int64, [1],
                              "INT64 values must be in the int64_contents field of contents only")
        Self.expectTypedError(Self.contents { $0.bytesContents = [[1]] }, .uint8, [1],
                              "UINT8 values must be in the uint_contents field of contents only")
    }

    @Test func countMustMatchTheShape() {
        Self.expectTypedError(Self.contents { $0.fp64Contents = [1] }, .fp64, [2], "shape [2] needs 2 values, got 1")
        Self.expectTypedError(Self.contents { $0.bytesContents = [[], []] }, .bytes, [1, 1], "shape [1, 1] needs 1 values, got 2")
        Self.expectTypedError(InferTensorContents(), .bool, [], "shape [] needs 1 values, got 0")
        Self.expectTypedError(InferTensorContents(), .bool, [-1], "negative dimension in shape [-1]")
    }

    // MARK: - Typed contents read in place from a request

    /// Reads input 0 of a request holding `contents` (none when nil) in place, as the server does.
    static func viaView(_ contents: InferTensorContents?, _ type: TensorValues.ElementType, _ shape: [Int]) throws -> Result<TensorValues, ProtoDecodingError> {
        var r = ModelInferRequest()
        r.inputs = [.init(name: "x", datatype: type.rawValue, shape: shape.map(Int64.init), contents: contents)]
        return try r.serializedBytes().withUnsafeBytes { buffer in
            try ModelInferRequest.withView(buffer) { view in
                Result { () throws(ProtoDecodingError) in try TensorValues(contents: view.input(0).contents, as: type, shape: shape) }
            }
        }
    }

    /// The same read through the Swift message.
    static func viaMessage(_ contents: InferTensorContents?, _ type: TensorValues.ElementType, _ shape: [Int]) -> Result<TensorValues, ProtoDecodingError> {
        Result { () throws(ProtoDecodingError) in try TensorValues(contents: contents ?? InferTensorContents(), as: type, shape: shape) }
    }

    static func same(_ a: Result<TensorValues, ProtoDecodingError>, _ b: Result<TensorValues, ProtoDecodingError>) -> Bool {
        switch (a, b) {
        case (.success(let x), .success(let y)): x == y
        case (.failure(let x), .failure(let y)): x.message == y.message
        default: false
        }
    }

    @Test(arguments: samples) func theViewReadsWhatTheMessageReads(_ sample: Sample) throws {
        let type = sample.values.elementType
        let n = sample.values.count
        let fromView = try Self.viaView(sample.contents, type, [n])
        #expect(try fromView.get() == sample.values)
        // And fails the same way.
        for (contents, shape) in [(sample.contents, [n + 1]), (nil, [n]), (nil, [0])] as [(InferTensorContents?, [Int])] {
            let a = try Self.viaView(contents, type, shape)
            let b = Self.viaMessage(contents, type, shape)
            #expect(Self.same(a, b), "\(type) shape \(shape): view \(a), message \(b)")
        }
    }

    @Test func theViewChecksRangesAndFieldsAsTheMessageDoes() throws {
        let cases: [(InferTensorContents, TensorValues.ElementType, [Int])] = [
            (Self.contents { $0.intContents = [-129] }, .int8, [1]),
            (Self.contents { $0.intContents = [40000] }, .int16, [1]),
            (Self.contents { $0.uintContents = [300] }, .uint8, [1]),
            (Self.contents { $0.uintContents = [70000] }, .uint16, [1]),
            (Self.contents { $0.boolContents = [true]; $0.fp32Contents = [1] }, .bool, [1]),
            (Self.contents { $0.int64Contents = [1, 2] }, .int64, [3]),
        ]
        for (contents, type, shape) in cases {
            let fromView = try Self.viaView(contents, type, shape)
            #expect(throws: ProtoDecodingError.self) { try fromView.get() }
            #expect(Self.same(fromView, Self.viaMessage(contents, type, shape)), "\(type) \(contents)")
        }
    }

    // MARK: - Generic helpers

    @Test func gatheringAndConcatenatingKeepTheElementType() {
        for sample in Self.samples where sample.values.count >= 2 {
            let v = sample.values
            let first = v.gathering([0..<1])
            let rest = v.gathering([1..<v.count])
            #expect(first.count == 1 && rest.count == v.count - 1)
            #expect(TensorValues.concatenating([first, rest]) == v, "\(v.elementType)")
            // Runs in any order, repeated.
            #expect(v.gathering([1..<2, 0..<1, 1..<2]) == TensorValues.concatenating([v.gathering([1..<2]), first, v.gathering([1..<2])]))
            #expect(v.gathering([0..<0]).count == 0)
        }
        #expect(TensorValues.int32([1, 2, 3, 4]).gathering([2..<4, 0..<1]) == .int32([3, 4, 1]))
        #expect(TensorValues.concatenating([TensorValues.bytes([[1]]), .bytes([]), .bytes([[], [2]])]) == .bytes([[1], [], [2]]))
    }

    @Test func elementBytesAreTheRawLayoutButForBytes() {
        for sample in Self.samples {
            let memory = sample.values.withUnsafeElementBytes { Array($0) }
            if sample.values.elementType == .bytes {
                #expect(memory == nil)
            } else {
                #expect(memory == sample.raw, "\(sample.values.elementType)")
            }
        }
    }
}
