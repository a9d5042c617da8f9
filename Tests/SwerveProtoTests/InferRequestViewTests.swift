import Testing
@testable import SwerveProto

/// `ModelInferRequest.withView` must read exactly what `ModelInferRequest(serializedBytes:)`
/// decodes (parameters aside: the view does not expose them), refuse the same inputs, and stay
/// correct when the per-thread scratch arena overflows, grows, or is already in use.
@Suite struct InferRequestViewTests {
    // MARK: - Helpers

    /// Everything the view exposes, copied out into the Swift message type (parameters empty).
    static func snapshot(_ view: ModelInferRequestView) -> ModelInferRequest {
        var r = ModelInferRequest()
        r.modelName = view.modelName
        r.modelVersion = view.modelVersion
        r.id = view.id
        for i in 0..<view.inputCount {
            let input = view.input(i)
            // The byte views and the String accessors must agree.
            #expect(Array(input.nameBytes) == Array(input.name.utf8), "input \(i) nameBytes")
            #expect(Array(input.datatypeBytes) == Array(input.datatype.utf8), "input \(i) datatypeBytes")
            var tensor = ModelInferRequest.InputTensor(name: input.name, datatype: input.datatype, shape: Array(input.shape))
            if let c = input.contents {
                var contents = InferTensorContents()
                #expect(c.bool.allSatisfy { $0 == 0 || $0 == 1 }, "bool values are 0 or 1")
                contents.boolContents = c.bool.map { $0 != 0 }
                contents.intContents = Array(c.int32)
                contents.int64Contents = Array(c.int64)
                contents.uintContents = Array(c.uint32)
                contents.uint64Contents = Array(c.uint64)
                contents.fp32Contents = Array(c.fp32)
                contents.fp64Contents = Array(c.fp64)
                contents.bytesContents = (0..<c.bytesCount).map { Array(c.bytes($0)) }
                #expect(c.count == contents.count, "InferContentsView.count")
                tensor.contents = contents
            }
            r.inputs.append(tensor)
        }
        r.outputs = (0..<view.requestedOutputCount).map { .init(name: view.requestedOutputName($0)) }
        r.rawInputContents = (0..<view.rawInputContentsCount).map { Array(view.rawInputContents($0)) }
        return r
    }

    /// The decoded message with every parameter map emptied (what the view can be compared to).
    static func withoutParameters(_ r: ModelInferRequest) -> ModelInferRequest {
        var r = r
        r.parameters = [:]
        for i in r.inputs.indices { r.inputs[i].parameters = [:] }
        for i in r.outputs.indices { r.outputs[i].parameters = [:] }
        return r
    }

    static func view(_ bytes: [UInt8]) throws -> ModelInferRequest {
        try bytes.withUnsafeBytes { buf in try ModelInferRequest.withView(buf) { snapshot($0) } }
    }

    /// Checks the view of `request`'s bytes against what `init(serializedBytes:)` decodes.
    static func checkAgainstDecoder(_ request: ModelInferRequest, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = request.serializedBytes()
        let decoded = try ModelInferRequest(serializedBytes: bytes)
        let viewed = try view(bytes)
        #expect(viewed == withoutParameters(decoded), sourceLocation: sourceLocation)
        // The fixtures are built to survive the wire unchanged, so this also pins the decoder.
        #expect(decoded == request, sourceLocation: sourceLocation)
    }

    /// Minimal protobuf wire writer for hand-made messages.
    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v
        var out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
        return out
    }
    static func field(_ number: UInt64, _ body: [UInt8]) -> [UInt8] {
        varint(number << 3 | 2) + varint(UInt64(body.count)) + body
    }
    static func field(_ number: UInt64, _ s: String) -> [UInt8] { field(number, Array(s.utf8)) }

    static func contents(_ fill: (inout InferTensorContents) -> Void) -> InferTensorContents {
        var c = InferTensorContents()
        fill(&c)
        return c
    }

    // MARK: - Same result as init(serializedBytes:)

    @Test func everyContentsFieldMatchesTheDecoder() throws {
        var r = ModelInferRequest()
        r.modelName = "iris-classifier"
        r.modelVersion = "12"
        r.id = "req-é-日本"
        r.parameters = ["priority": .int64(3), "s": .string("x")]
        r.inputs = [
            .init(name: "b", datatype: "BOOL", shape: [2, 3], contents: Self.contents { $0.boolContents = [true, false, true, true, false, false] }),
            .init(name: "i32", datatype: "INT32", shape: [5], contents: Self.contents { $0.intContents = [0, 1, -1, .min, .max] }),
            .init(name: "i64", datatype: "INT64", shape: [4], contents: Self.contents { $0.int64Contents = [0, -7, .min, .max] }),
            .init(name: "u32", datatype: "UINT32", shape: [3], contents: Self.contents { $0.uintContents = [0, 1, .max] }),
            .init(name: "u64", datatype: "UINT64", shape: [3], contents: Self.contents { $0.uint64Contents = [0, 1 << 40, .max] }),
            .init(name: "f32", datatype: "FP32", shape: [1, 6],
                  contents: Self.contents { $0.fp32Contents = [0, -0.0, 1.5, -3.25, .infinity, .leastNonzeroMagnitude] }),
            .init(name: "f64", datatype: "FP64", shape: [5],
                  contents: Self.contents { $0.fp64Contents = [0, .pi, -.infinity, .greatestFiniteMagnitude, .leastNormalMagnitude] }),
            // Bytes elements may hold NUL bytes (only string fields are refused) and may be empty.
            .init(name: "bytes", datatype: "BYTES", shape: [4],
                  contents: Self.contents { $0.bytesContents = [Array("hello".utf8), [], [0, 1, 0, 255], Array(repeating: 0xAB, count: 300)] }),
            .init(name: "名前", datatype: "FP32", shape: [0], parameters: ["p": .uint64(1)], contents: InferTensorContents()),
            .init(name: "nocontents", datatype: "FP32", shape: []),
        ]
        r.outputs = [.init(name: "label", parameters: ["classification": .int64(2)]), .init(name: "probabilities"), .init(name: "")]
        try Self.checkAgainstDecoder(r)
    }

    @Test(arguments: 0..<8) func eachContentsFieldAlone(field: Int) throws {
        var c = InferTensorContents()
        switch field {
        case 0: c.boolContents = [false, true]
        case 1: c.intContents = [-5, 5]
        case 2: c.int64Contents = [-5_000_000_000, 5]
        case 3: c.uintContents = [7, 4_000_000_000]
        case 4: c.uint64Contents = [UInt64.max - 1, 2]
        case 5: c.fp32Contents = [0.1, 0.2]
        case 6: c.fp64Contents = [0.1, 0.2]
        default: c.bytesContents = [[1], [2, 3]]
        }
        var r = ModelInferRequest()
        r.modelName = "m"
        r.inputs = [.init(name: "x", datatype: "X", shape: [1, 2], contents: c)]
        try Self.checkAgainstDecoder(r)
        let counts = try r.serializedBytes().withUnsafeBytes { buf in
            try ModelInferRequest.withView(buf) { v -> [Int] in
                let c = v.input(0).contents!
                return [c.bool.count, c.int32.count, c.int64.count, c.uint32.count, c.uint64.count, c.fp32.count, c.fp64.count, c.bytesCount]
            }
        }
        var expected = Array(repeating: 0, count: 8)
        expected[field] = 2
        #expect(counts == expected)
    }

    @Test func rawInputContentsAndRequestedOutputs() throws {
        var r = ModelInferRequest()
        r.modelName = "m"
        r.modelVersion = ""
        r.inputs = [
            .init(name: "a", datatype: "FP32", shape: [1, 2]),
            .init(name: "b", datatype: "BYTES", shape: [1]),
            .init(name: "c", datatype: "INT8", shape: [3]),
        ]
        var fp: [UInt8] = []
        for f in [Float(1.5), -2] { withUnsafeBytes(of: f.bitPattern.littleEndian) { fp.append(contentsOf: $0) } }
        r.rawInputContents = [fp, [3, 0, 0, 0, 0x61, 0x00, 0x62], []]
        r.outputs = [.init(name: "y"), .init(name: "z")]
        try Self.checkAgainstDecoder(r)

        let names = try r.serializedBytes().withUnsafeBytes { buf in
            try ModelInferRequest.withView(buf) { v in
                #expect(v.rawInputContentsCount == 3)
                #expect(v.rawInputContents(2).count == 0)
                #expect(v.input(0).contents == nil)
                return (0..<v.requestedOutputCount).map(v.requestedOutputName)
            }
        }
        #expect(names == ["y", "z"])
    }

    @Test func manyInputs() throws {
        var r = ModelInferRequest()
        r.modelName = "wide"
        r.inputs = (0..<200).map { i in
            .init(name: "feature_\(i)", datatype: "FP32", shape: [1, 1], contents: Self.contents { $0.fp32Contents = [Float(i) / 7] })
        }
        try Self.checkAgainstDecoder(r)
    }

    @Test func nanBitsArePreserved() throws {
        var r = ModelInferRequest()
        let f32: [Float] = [.nan, .signalingNaN, -.nan, Float(bitPattern: 0x7FC0_1234)]
        let f64: [Double] = [.nan, Double(bitPattern: 0xFFF8_0000_0000_0042)]
        r.inputs = [.init(name: "x", datatype: "FP32", shape: [4], contents: Self.contents { $0.fp32Contents = f32 }),
                    .init(name: "y", datatype: "FP64", shape: [2], contents: Self.contents { $0.fp64Contents = f64 })]
        let bits = try r.serializedBytes().withUnsafeBytes { buf in
            try ModelInferRequest.withView(buf) { v in
                (v.input(0).contents!.fp32.map(\.bitPattern), v.input(1).contents!.fp64.map(\.bitPattern))
            }
        }
        #expect(bits.0 == f32.map(\.bitPattern))
        #expect(bits.1 == f64.map(\.bitPattern))
    }

    @Test func emptyMessage() throws {
        let bytes = ModelInferRequest().serializedBytes()
        #expect(bytes.isEmpty)
        let expected = try ModelInferRequest(serializedBytes: bytes)
        #expect(try Self.view(bytes) == expected)
        // A buffer with no base address at all.
        let viewed = try ModelInferRequest.withView(UnsafeRawBufferPointer(start: nil, count: 0)) { v in
            #expect(v.modelName == "" && v.modelVersion == "" && v.id == "")
            #expect(v.inputCount == 0 && v.requestedOutputCount == 0 && v.rawInputContentsCount == 0)
            return Self.snapshot(v)
        }
        #expect(viewed == ModelInferRequest())
    }

    @Test func inputWithNoFieldsSet() throws {
        // An empty InferInputTensor (field 5, length 0) and an empty requested output.
        let bytes = Self.field(5, [UInt8]()) + Self.field(6, [UInt8]())
        let decoded = try ModelInferRequest(serializedBytes: bytes)
        let viewed = try Self.view(bytes)
        #expect(viewed == decoded)
        try bytes.withUnsafeBytes { buf in
            try ModelInferRequest.withView(buf) { v in
                #expect(v.inputCount == 1)
                #expect(v.input(0).nameBytes.count == 0)
                #expect(v.input(0).datatypeBytes.count == 0)
                #expect(v.input(0).shape.isEmpty)
                #expect(v.input(0).contents == nil)
                #expect(v.requestedOutputName(0) == "")
            }
        }
    }

    @Test func viewOfASliceOfALargerBuffer() throws {
        // The view must read only the bytes it is given, not up to some terminator.
        var r = ModelInferRequest()
        r.modelName = "m"
        r.inputs = [.init(name: "x", datatype: "INT64", shape: [2], contents: Self.contents { $0.int64Contents = [1, 2] })]
        let bytes = r.serializedBytes()
        let padded = [0xEE, 0xEE] + bytes + [0xFF, 0xFF, 0xFF]
        let viewed = try padded.withUnsafeBytes { all in
            try ModelInferRequest.withView(UnsafeRawBufferPointer(rebasing: all[2..<(2 + bytes.count)])) { Self.snapshot($0) }
        }
        #expect(viewed == r)
    }

    // MARK: - Refused inputs

    /// Messages whose string fields hold a NUL byte, at every depth ModelInferRequest has strings.
    static let nulStringMessages: [(String, [UInt8])] = {
        let nul = "a\u{0}b"
        let paramWithNULKey = field(1, nul) + field(2, field(3, "v"))
        let paramWithNULValue = field(1, "k") + field(2, field(3, nul))
        return [
            ("model_name", field(1, nul)),
            ("model_version", field(1, "m") + field(2, nul)),
            ("id", field(3, "\u{0}")),
            ("parameter key", field(4, paramWithNULKey)),
            ("parameter string value", field(4, paramWithNULValue)),
            ("input name", field(5, field(1, nul) + field(2, "FP32"))),
            ("input datatype", field(5, field(1, "x") + field(2, "FP32\u{0}"))),
            ("input parameter value", field(5, field(1, "x") + field(4, paramWithNULValue))),
            ("second input name", field(5, field(1, "x")) + field(5, field(1, "y\u{0}"))),
            ("requested output name", field(6, field(1, nul))),
            ("requested output parameter", field(6, field(1, "y") + field(2, paramWithNULKey))),
        ]
    }()

    @Test func stringWithNULIsRefusedLikeTheDecoder() throws {
        for (what, bytes) in Self.nulStringMessages {
            #expect(throws: ProtoDecodingError.self, "init(serializedBytes:), \(what)") {
                _ = try ModelInferRequest(serializedBytes: bytes)
            }
            var called = false
            #expect(throws: ProtoDecodingError.self, "withView, \(what)") {
                try bytes.withUnsafeBytes { buf in try ModelInferRequest.withView(buf) { _ in called = true } }
            }
            #expect(!called, "withView ran its body for \(what)")
        }
        // Without the NUL byte the same shapes decode.
        let clean = Self.field(1, "ab") + Self.field(5, Self.field(1, "x") + Self.field(2, "FP32"))
        #expect(try Self.view(clean) == ModelInferRequest(serializedBytes: clean))
    }

    /// The schema walk on its own, on a tree with siblings whose subtrees differ in size (the
    /// flattened node table must find each child's own subtree): a NUL is found in exactly the
    /// string fields, at every depth, and nowhere else.
    @Test func stringFieldSchemaFindsNULsInItsOwnStringsOnly() {
        let leaf = StringFields(strings: [2])
        let schema = StringFields(strings: [1], nested: [
            3: StringFields(strings: [1], nested: [5: StringFields(strings: [4], nested: [6: leaf])]),
            4: leaf,
            9: StringFields(strings: [7], nested: [2: leaf, 3: StringFields(strings: [1])]),
        ])
        let nul = "x\u{0}"
        let hits: [(String, [UInt8])] = [
            ("root string", Self.field(1, nul)),
            ("first child string", Self.field(3, Self.field(1, nul))),
            ("grandchild string", Self.field(3, Self.field(5, Self.field(4, nul)))),
            ("great-grandchild string", Self.field(3, Self.field(5, Self.field(6, Self.field(2, nul))))),
            ("second child string", Self.field(4, Self.field(2, nul))),
            ("third child string", Self.field(9, Self.field(7, nul))),
            ("third child's first child", Self.field(9, Self.field(2, Self.field(2, nul)))),
            ("third child's second child", Self.field(9, Self.field(3, Self.field(1, nul)))),
        ]
        for (what, bytes) in hits {
            #expect(bytes.withUnsafeBytes { schema.containsNUL(in: $0) }, "\(what)")
        }
        let misses: [(String, [UInt8])] = [
            ("a field that is neither", Self.field(2, nul)),
            ("a child's non-string field", Self.field(3, Self.field(2, nul))),
            ("a leaf's other field", Self.field(4, Self.field(1, nul))),
            ("a string number of another level", Self.field(9, Self.field(3, Self.field(2, nul)))),
            ("a nested field's number at the wrong level", Self.field(6, Self.field(2, nul))),
            ("clean strings everywhere", Self.field(1, "a") + Self.field(3, Self.field(5, Self.field(6, Self.field(2, "b")))) + Self.field(9, Self.field(7, "c"))),
        ]
        for (what, bytes) in misses {
            #expect(!bytes.withUnsafeBytes { schema.containsNUL(in: $0) }, "\(what)")
        }
    }

    @Test func nulBytesOutsideStringFieldsAreAccepted() throws {
        var r = ModelInferRequest()
        r.modelName = "m"
        r.inputs = [.init(name: "x", datatype: "BYTES", shape: [2], contents: Self.contents { $0.bytesContents = [[0], [0, 0, 0]] })]
        r.rawInputContents = [[0, 0, 0, 0]]
        try Self.checkAgainstDecoder(r)
    }

    static let garbage: [(String, [UInt8])] = [
        ("truncated tag varint", [0xFF, 0xFF, 0xFF]),
        ("length past the end", [0x0A, 0x05, 0x61]),
        ("model_name as a varint", [0x08, 0x01]),
        ("inputs as a fixed32", [0x2D, 0x01, 0x02, 0x03, 0x04]),
        ("truncated input", field(5, [0x0A, 0x09, 0x61])),
        ("bad nested contents", field(5, field(1, "x") + field(5, [0x0A, 0x7F]))),
        ("end-group without start", [0x0C]),
        ("wire type 7", [0x0F, 0x00]),
        ("random bytes", [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0, 0xFF, 0x80]),
    ]

    @Test func garbageIsRefusedLikeTheDecoder() {
        for (what, bytes) in Self.garbage {
            #expect(throws: ProtoDecodingError.self, "init(serializedBytes:), \(what)") {
                _ = try ModelInferRequest(serializedBytes: bytes)
            }
            var called = false
            #expect(throws: ProtoDecodingError.self, "withView, \(what)") {
                try bytes.withUnsafeBytes { buf in try ModelInferRequest.withView(buf) { _ in called = true } }
            }
            #expect(!called, "withView ran its body for \(what)")
        }
        // Whatever the outcome for arbitrary prefixes of a valid message, both must agree.
        var r = ModelInferRequest()
        r.modelName = "model"
        r.inputs = [.init(name: "x", datatype: "FP32", shape: [2], contents: Self.contents { $0.fp32Contents = [1, 2] })]
        r.rawInputContents = [[1, 2, 3]]
        let bytes = r.serializedBytes()
        for cut in 0...bytes.count {
            let prefix = Array(bytes[..<cut])
            let decoded = try? ModelInferRequest(serializedBytes: prefix)
            let viewed = try? Self.view(prefix)
            #expect(viewed == decoded.map(Self.withoutParameters), "prefix of \(cut) bytes")
        }
    }

    @Test func errorFromTheBodyPropagatesAndReleasesTheArena() throws {
        struct BodyError: Error {}
        var r = ModelInferRequest()
        r.modelName = "m"
        let bytes = r.serializedBytes()
        #expect(throws: BodyError.self) {
            try bytes.withUnsafeBytes { buf in try ModelInferRequest.withView(buf) { _ in throw BodyError() } }
        }
        // The next decode on this thread still gets a working view.
        #expect(try Self.view(bytes) == r)
    }

    // MARK: - Beyond the scratch arena

    static func largeRequest(rawBytes: Int, floats: Int, seed: UInt8) -> ModelInferRequest {
        var r = ModelInferRequest()
        r.modelName = "big"
        r.id = "large-\(seed)"
        r.inputs = [
            .init(name: "raw", datatype: "UINT8", shape: [Int64(rawBytes)]),
            .init(name: "typed", datatype: "FP32", shape: [Int64(floats)],
                  contents: Self.contents { $0.fp32Contents = (0..<floats).map { Float($0 % 1000) * 0.5 + Float(seed) } }),
            .init(name: "many", datatype: "BYTES", shape: [2000],
                  contents: Self.contents { $0.bytesContents = (0..<2000).map { [UInt8(truncatingIfNeeded: $0), seed] } }),
        ]
        r.outputs = [.init(name: "out")]
        r.rawInputContents = [(0..<rawBytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }]
        return r
    }

    @Test func largeRequestDecodesRepeatedly() throws {
        // 3 MB of raw input plus ~400 KB of floats: far past the 64 KiB scratch arena, so the
        // first decode overflows to malloc and the arena grows; later ones use the grown arena.
        let r = Self.largeRequest(rawBytes: 3 << 20, floats: 100_000, seed: 1)
        let bytes = r.serializedBytes()
        for round in 0..<3 {
            let viewed = try Self.view(bytes)
            #expect(viewed == r, "round \(round)")
        }
        // A small request after the large ones, then a request above the arena's 4 MiB cap.
        var small = ModelInferRequest()
        small.modelName = "small"
        small.inputs = [.init(name: "x", datatype: "INT32", shape: [1], contents: Self.contents { $0.intContents = [42] })]
        #expect(try Self.view(small.serializedBytes()) == small)
        let huge = Self.largeRequest(rawBytes: 5 << 20, floats: 10, seed: 2)
        let hugeBytes = huge.serializedBytes()
        #expect(try Self.view(hugeBytes) == huge)
        #expect(try Self.view(hugeBytes) == huge)
        #expect(try Self.view(bytes) == r)
    }

    @Test func nestedDecodeInsideAView() throws {
        var outer = ModelInferRequest()
        outer.modelName = "outer"
        outer.id = "o-1"
        outer.inputs = [.init(name: "x", datatype: "INT64", shape: [3], contents: Self.contents { $0.int64Contents = [1, 2, 3] })]
        outer.rawInputContents = [Array(repeating: 7, count: 1000)]
        let large = Self.largeRequest(rawBytes: 3 << 20, floats: 1000, seed: 3)
        var inner = ModelInferRequest()
        inner.modelName = "inner"
        inner.inputs = [.init(name: "y", datatype: "BOOL", shape: [2], contents: Self.contents { $0.boolContents = [true, false] })]

        let outerBytes = outer.serializedBytes()
        let largeBytes = large.serializedBytes()
        let innerBytes = inner.serializedBytes()
        try outerBytes.withUnsafeBytes { outerBuf in
            try ModelInferRequest.withView(outerBuf) { o in
                let before = Self.snapshot(o)
                #expect(before == outer)
                // The scratch arena is taken by the outer view: these decode through malloc.
                #expect(try Self.view(innerBytes) == inner)
                #expect(try Self.view(largeBytes) == large)
                #expect(try ModelInferRequest(serializedBytes: innerBytes) == inner)
                // Two levels deep.
                try innerBytes.withUnsafeBytes { innerBuf in
                    try ModelInferRequest.withView(innerBuf) { i throws in
                        #expect(Self.snapshot(i) == inner)
                        #expect(try Self.view(outerBytes) == outer)
                        #expect(Self.snapshot(i) == inner)
                    }
                }
                // Encoding a response (its arena also wants the scratch) while the view is live.
                let response = ModelInferResponse.serialize(
                    modelName: o.modelName, modelVersion: "1", id: o.id, raw: false, outputCount: 1
                ) { _ in (name: "y", shape: [3], values: .int64(Array(o.input(0).contents!.int64))) }
                let decoded = try ModelInferResponse(serializedBytes: response)
                #expect(decoded.modelName == "outer" && decoded.id == "o-1")
                #expect(decoded.outputs.first?.contents?.int64Contents == [1, 2, 3])
                // None of that disturbed the outer view's memory.
                #expect(Self.snapshot(o) == before)
            }
        }
        // The arena is free again afterwards.
        #expect(try Self.view(outerBytes) == outer)
        #expect(try Self.view(largeBytes) == large)
    }
}
