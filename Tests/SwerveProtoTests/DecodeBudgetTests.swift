import Testing
@testable import SwerveProto

/// protobuf-c allocates a struct per sub-message however little wire it took: a 4 MiB
/// ModelInferRequest of two-byte empty `inputs` made the decoder allocate ~256 MiB (found with
/// Fuzz/FuzzInferRequest under -malloc_limit_mb). Unpacking now has a budget of
/// `decodeBudget(size)` bytes; such a message is refused with a message saying so, while real
/// messages, even the most expanding ones (packed one-byte varints), still decode.
@Suite struct DecodeBudgetTests {
    /// A request for model "m" followed by `count` empty `inputs` (field 5, length 0).
    static func emptyInputs(_ count: Int) -> [UInt8] {
        [0x0A, 0x01, 0x6D] + Array(repeating: [0x2A, 0x00], count: count).joined()
    }

    static func refusedForMemory(_ error: any Error) -> Bool {
        guard let e = error as? ProtoDecodingError else { return false }
        return e.message.contains("ModelInferRequest") && e.message.contains("bytes of memory to decode")
    }

    @Test func manyEmptySubMessagesAreRefusedByBothDecoders() {
        let bytes = Self.emptyInputs(2 * 1024 * 1024 - 2)
        #expect(bytes.count <= 4 * 1024 * 1024, "within the default maximum message size")
        #expect { _ = try ModelInferRequest(serializedBytes: bytes) } throws: { Self.refusedForMemory($0) }
        #expect {
            try bytes.withUnsafeBytes { buffer in try ModelInferRequest.withView(buffer) { _ in } }
        } throws: { Self.refusedForMemory($0) }
    }

    @Test func aFewEmptySubMessagesStillDecode() throws {
        let request = try ModelInferRequest(serializedBytes: Self.emptyInputs(100))
        #expect(request.modelName == "m")
        #expect(request.inputs.count == 100)
    }

    /// The most a real message expands: INT64 contents of small values, one byte each on the
    /// wire and eight in memory; and BOOL, one byte to four. Half a million of each.
    @Test func theMostExpandingRealContentsStillDecode() throws {
        let n = 1 << 19
        var request = ModelInferRequest()
        request.modelName = "m"
        var contents = InferTensorContents()
        contents.int64Contents = (0..<n).map { Int64($0 % 100) }
        contents.boolContents = (0..<n).map { $0 % 3 == 0 }
        request.inputs = [.init(name: "x", datatype: "INT64", shape: [Int64(n)], contents: contents)]
        let bytes = request.serializedBytes()
        #expect(bytes.count < 3 * n, "the values are one byte each on the wire")
        #expect(try ModelInferRequest(serializedBytes: bytes) == request)
        let viewed = try bytes.withUnsafeBytes { buffer in
            try ModelInferRequest.withView(buffer) { view in (view.input(0).contents!.int64.count, view.input(0).contents!.bool.count) }
        }
        #expect(viewed == (n, n))
    }

    /// BYTES contents of one-byte elements: three bytes of wire, protobuf-c's scan entry, a
    /// 16-byte descriptor and the byte itself in memory.
    @Test func manySmallBytesElementsStillDecode() throws {
        let n = 1 << 18
        var request = ModelInferRequest()
        request.modelName = "m"
        var contents = InferTensorContents()
        contents.bytesContents = (0..<n).map { [UInt8(truncatingIfNeeded: $0)] }
        request.inputs = [.init(name: "s", datatype: "BYTES", shape: [Int64(n)], contents: contents)]
        #expect(try ModelInferRequest(serializedBytes: request.serializedBytes()) == request)
    }
}
