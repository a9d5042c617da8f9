import Testing
@testable import SwerveProto

/// `ModelInferResponse.serialize(modelName:modelVersion:id:raw:outputCount:output:)` must encode
/// what building a `ModelInferResponse` would, and with `raw` put KServe's raw layout in
/// `raw_output_contents`. Expected raw bytes are written out by hand here, byte by byte.
@Suite struct InferResponseSerializeTests {
    /// An output and the datatype name the response must carry for it.
    typealias Part = (name: String, datatype: String, shape: [Int], values: TensorValues)

    static func serialize(_ parts: [Part], raw: Bool, modelName: String = "m", modelVersion: String = "1", id: String = "") -> [UInt8] {
        ModelInferResponse.serialize(modelName: modelName, modelVersion: modelVersion, id: id, raw: raw, outputCount: parts.count) {
            (name: parts[$0].name, shape: parts[$0].shape, values: parts[$0].values)
        }
    }

    /// The typed contents a `ModelInferResponse` built by hand would carry for `values`.
    static func contents(_ values: TensorValues) -> InferTensorContents {
        var c = InferTensorContents()
        switch values {
        case .bool(let v): c.boolContents = v
        case .int8(let v): c.intContents = v.map(Int32.init)
        case .int16(let v): c.intContents = v.map(Int32.init)
        case .int32(let v): c.intContents = v
        case .int64(let v): c.int64Contents = v
        case .uint8(let v): c.uintContents = v.map(UInt32.init)
        case .uint16(let v): c.uintContents = v.map(UInt32.init)
        case .uint32(let v): c.uintContents = v
        case .uint64(let v): c.uint64Contents = v
        case .fp32(let v): c.fp32Contents = v
        case .fp64(let v): c.fp64Contents = v
        case .bytes(let v): c.bytesContents = v
        }
        return c
    }

    /// Little-endian bytes written out by shifting, independent of memory layout.
    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) }
    }
    static func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] { values.flatMap { le($0) } }

    static let parts: [Part] = [
        ("b", "BOOL", [2, 2], .bool([true, false, false, true])),
        ("i32", "INT32", [4], .int32([0, -1, .min, .max])),
        ("i64", "INT64", [1, 3], .int64([-5_000_000_000, .min, .max])),
        ("u32", "UINT32", [2], .uint32([1, .max])),
        ("u64", "UINT64", [3], .uint64([0, 1 << 63, .max])),
        ("f32", "FP32", [3], .fp32([1.5, -0.0, .infinity])),
        ("f64", "FP64", [2], .fp64([.pi, -1e300])),
        ("bytes", "BYTES", [3], .bytes([Array("hi".utf8), [], [0, 255, 0]])),
        ("i8", "INT8", [3], .int8([-128, 0, 127])),
        ("u8", "UINT8", [2], .uint8([0, 255])),
        ("i16", "INT16", [2], .int16([-32768, 32767])),
        ("empty", "FP32", [0, 4], .fp32([])),
        ("scalar", "INT64", [], .int64([9])),
        ("名前", "BYTES", [1], .bytes([Array("日本".utf8)])),
        ("u16", "UINT16", [3], .uint16([0, 0x1234, .max])),
    ]

    @Test func typedContentsMatchABuiltResponse() throws {
        let bytes = Self.serialize(Self.parts, raw: false, modelName: "iris", modelVersion: "7", id: "req-é")
        var expected = ModelInferResponse()
        expected.modelName = "iris"
        expected.modelVersion = "7"
        expected.id = "req-é"
        expected.outputs = Self.parts.map {
            .init(name: $0.name, datatype: $0.datatype, shape: $0.shape.map(Int64.init), contents: Self.contents($0.values))
        }
        let decoded = try ModelInferResponse(serializedBytes: bytes)
        #expect(decoded == expected)
        #expect(decoded.rawOutputContents.isEmpty)
        // And the built response decodes to the same thing.
        #expect(try ModelInferResponse(serializedBytes: expected.serializedBytes()) == decoded)
        // Narrow integer types are not narrowed in typed contents: they stay in int/uint_contents.
        #expect(decoded.outputs[8].contents?.intContents == [-128, 0, 127])
        #expect(decoded.outputs[9].contents?.uintContents == [0, 255])
        #expect(decoded.outputs[14].contents?.uintContents == [0, 0x1234, 0xFFFF])
    }

    @Test(arguments: InferResponseSerializeTests.parts.indices) func eachOutputAloneTyped(index: Int) throws {
        let part = Self.parts[index]
        let decoded = try ModelInferResponse(serializedBytes: Self.serialize([part], raw: false))
        #expect(decoded.outputs.count == 1)
        let o = try #require(decoded.outputs.first)
        #expect(o.name == part.name)
        #expect(o.datatype == part.datatype)
        #expect(o.shape == part.shape.map(Int64.init))
        #expect(o.contents == Self.contents(part.values))
        #expect(decoded.rawOutputContents.isEmpty)
    }

    @Test func nanBitsSurviveTyped() throws {
        let f32: [Float] = [.nan, Float(bitPattern: 0x7FC0_0ABC), -.nan]
        let f64: [Double] = [Double(bitPattern: 0x7FF8_0000_0000_0123)]
        let decoded = try ModelInferResponse(serializedBytes: Self.serialize(
            [("a", "FP32", [3], .fp32(f32)), ("b", "FP64", [1], .fp64(f64))], raw: false))
        #expect(decoded.outputs[0].contents?.fp32Contents.map(\.bitPattern) == f32.map(\.bitPattern))
        #expect(decoded.outputs[1].contents?.fp64Contents.map(\.bitPattern) == f64.map(\.bitPattern))
    }

    @Test func noOutputs() throws {
        for raw in [false, true] {
            let bytes = Self.serialize([], raw: raw, modelName: "m", modelVersion: "", id: "x")
            var expected = ModelInferResponse()
            expected.modelName = "m"
            expected.id = "x"
            #expect(try ModelInferResponse(serializedBytes: bytes) == expected)
        }
        #expect(Self.serialize([], raw: false, modelName: "", modelVersion: "", id: "").isEmpty)
    }

    // MARK: - Raw layout

    /// KServe's raw layout for each of `parts`, written out by hand.
    static let expectedRaw: [[UInt8]] = [
        [1, 0, 0, 1],
        le([Int32(0), -1, .min, .max]),
        le([Int64(-5_000_000_000), .min, .max]),
        le([UInt32(1), .max]),
        le([UInt64(0), 1 << 63, .max]),
        le([Float(1.5).bitPattern, (-0.0 as Float).bitPattern, Float.infinity.bitPattern]),
        le([Double.pi.bitPattern, (-1e300 as Double).bitPattern]),
        [2, 0, 0, 0, 0x68, 0x69, 0, 0, 0, 0, 3, 0, 0, 0, 0, 255, 0],
        [0x80, 0x00, 0x7F],
        [0x00, 0xFF],
        [0x00, 0x80, 0xFF, 0x7F],
        [],
        le([Int64(9)]),
        [6, 0, 0, 0] + Array("日本".utf8),
        [0x00, 0x00, 0x34, 0x12, 0xFF, 0xFF],
    ]

    @Test func rawLayoutPerDatatype() throws {
        // Spot-check the hand-written expectations themselves.
        #expect(Self.expectedRaw[1] == [0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0x80, 0xFF, 0xFF, 0xFF, 0x7F])
        #expect(Self.expectedRaw[5].prefix(4) == [0x00, 0x00, 0xC0, 0x3F])

        let bytes = Self.serialize(Self.parts, raw: true, modelName: "iris", modelVersion: "7", id: "r")
        let decoded = try ModelInferResponse(serializedBytes: bytes)
        #expect(decoded.modelName == "iris" && decoded.modelVersion == "7" && decoded.id == "r")
        #expect(decoded.outputs.count == Self.parts.count)
        #expect(decoded.rawOutputContents.count == Self.parts.count, "one raw entry per output, empty ones included")
        for (i, part) in Self.parts.enumerated() {
            guard i < decoded.outputs.count, i < decoded.rawOutputContents.count else { break }
            let o = decoded.outputs[i]
            #expect(o.name == part.name)
            #expect(o.datatype == part.datatype)
            #expect(o.shape == part.shape.map(Int64.init))
            #expect(o.contents == nil, "raw output \(part.name) must carry no typed contents")
            #expect(decoded.rawOutputContents[i] == Self.expectedRaw[i], "raw bytes of \(part.name)")
        }
    }

    @Test func rawBytesElements() throws {
        let long = (0..<300).map { UInt8(truncatingIfNeeded: $0) }
        let parts: [Part] = [
            ("none", "BYTES", [0], .bytes([])),
            ("empties", "BYTES", [2], .bytes([[], []])),
            ("long", "BYTES", [2], .bytes([long, [0]])),
        ]
        let decoded = try ModelInferResponse(serializedBytes: Self.serialize(parts, raw: true))
        #expect(decoded.rawOutputContents == [
            [],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0x2C, 0x01, 0, 0] + long + [1, 0, 0, 0, 0],
        ])
    }

    @Test func largeRawOutput() throws {
        // Larger than the scratch arena: the serializer's arena falls back to malloc.
        let n = 50_000  // 200 KB of FP32 and 400 KB of INT64
        let values = (0..<n).map { Float($0) * 0.25 }
        let labels = (0..<n).map { Int64($0) - 7 }
        let parts: [Part] = [("scores", "FP32", [n], .fp32(values)), ("labels", "INT64", [n, 1], .int64(labels))]
        for _ in 0..<2 {
            let decoded = try ModelInferResponse(serializedBytes: Self.serialize(parts, raw: true))
            #expect(decoded.rawOutputContents.count == 2)
            #expect(decoded.rawOutputContents.first == Self.le(values.map(\.bitPattern)))
            #expect(decoded.rawOutputContents.last == Self.le(labels))
            let typed = try ModelInferResponse(serializedBytes: Self.serialize(parts, raw: false))
            #expect(typed.outputs.first?.contents?.fp32Contents == values)
            #expect(typed.outputs.last?.contents?.int64Contents == labels)
        }
    }

    @Test func outputClosureIsCalledOncePerIndexInOrder() {
        var seen: [Int] = []
        _ = ModelInferResponse.serialize(modelName: "m", modelVersion: "1", id: "", raw: true, outputCount: 3) { i in
            seen.append(i)
            return (name: "o\(i)", shape: [1], values: .int32([Int32(i)]))
        }
        #expect(seen == [0, 1, 2])
    }
}
