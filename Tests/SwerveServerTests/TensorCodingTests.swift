import Logging
import SwerveInference
import SwerveProto
import SwerveRepository
import SwerveServing
import SwerveTesting
import Testing

@testable import SwerveServer

/// The request side of `TensorCoding`, called directly on a decoded request and a loaded model
/// (no socket): shapes and element counts, the contents field each datatype must use, the
/// narrow-integer range checks, raw and typed contents and how they may not mix.
@Suite("Tensor coding")
struct TensorCodingTests {
    /// Loads `models` into a manager over a temporary repository and runs `body` with it.
    static func withModels<R>(_ models: [TestModel], _ body: (ModelManager) throws -> R) throws -> R {
        try withTemporaryDirectory { repository in
            for model in models { try model.install(into: repository) }
            let manager = ModelManager(
                repository: ModelRepository(path: repository.path), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            defer { manager.shutdown() }
            try manager.loadAll()
            return try body(manager)
        }
    }

    /// `TensorCoding.inputs` of `request` (serialized and read back in place, as the server does).
    static func decode(_ request: ModelInferRequest, _ manager: ModelManager) throws -> (inputs: [Tensor], rows: Int) {
        let model = try manager.resolve(model: request.modelName, version: request.modelVersion)
        return try request.serializedBytes().withUnsafeBytes { bytes in
            try ModelInferRequest.withView(bytes) { view in try TensorCoding.inputs(of: view, for: model) }
        }
    }

    /// Expects `decode` to fail with INVALID_ARGUMENT whose message names `mentioning`.
    static func expectInvalid(
        _ request: ModelInferRequest, _ manager: ModelManager, mentioning: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(sourceLocation: sourceLocation) {
            _ = try decode(request, manager)
        } throws: { error in
            guard let e = error as? ServingError else { return false }
            return e.code == .invalidArgument && e.message.contains(mentioning)
        }
    }

    static let smallInts = TestModels.smallInts
    static let lr = TestModel.fixture("lr_binary", as: "lr")
    static let two = TestModel.fixture("ct_onehot_int64", as: "two")

    // MARK: Shapes

    @Test func shapesAreCheckedAndTheirElementCountsBounded() throws {
        func shape(_ dims: [Int64]) throws -> [Int] {
            try dims.withUnsafeBufferPointer { try TensorCoding.shape($0, name: "x") }
        }
        #expect(try shape([3, 30]) == [3, 30])
        #expect(try shape([]) == [], "a scalar")
        #expect(try shape([0, 30]) == [0, 30])
        let side = Int64(1 << 14)
        #expect(try shape([side, side]) == [1 << 14, 1 << 14], "exactly the largest element count")
        for bad: [Int64] in [[-1, 30], [side, side, 2], [Int64(TensorCoding.maxElements) + 1], [1 << 33, 1 << 33], [.min, 1], [.max]] {
            #expect(throws: ServingError.self, "\(bad)") { _ = try shape(bad) }
        }
    }

    /// Typed contents carry exactly as many values as the shape has elements; raw contents exactly
    /// as many bytes.
    @Test func elementCountsMustMatchTheShape() throws {
        let x = WireTensor.fp32("X", [3, 30], (0..<90).map(Float.init))
        try Self.withModels([Self.lr]) { manager in
            let (inputs, rows) = try Self.decode(inferRequest("lr", [x], raw: false), manager)
            #expect(rows == 3)
            #expect(inputs == [Tensor(shape: [3, 30], data: .fp32((0..<90).map(Float.init)))])
            #expect(try Self.decode(inferRequest("lr", [x], raw: true), manager).inputs == inputs, "raw reads the same")

            var short = x
            short.shape = [2, 30]
            Self.expectInvalid(inferRequest("lr", [short], raw: false), manager, mentioning: "X")
            Self.expectInvalid(inferRequest("lr", [short], raw: true), manager, mentioning: "X")
            var long = x
            long.shape = [4, 30]
            Self.expectInvalid(inferRequest("lr", [long], raw: false), manager, mentioning: "X")
            Self.expectInvalid(inferRequest("lr", [long], raw: true), manager, mentioning: "X")
            var request = inferRequest("lr", [x], raw: true)
            request.rawInputContents[0].removeLast()
            Self.expectInvalid(request, manager, mentioning: "X")
        }
    }

    /// Each datatype's values go in its own field of `contents`; values in another field, or in
    /// two fields, are refused rather than guessed at.
    @Test func valuesMustBeInTheDatatypesContentsField() throws {
        try Self.withModels([Self.lr, Self.smallInts]) { manager in
            let x = WireTensor.fp32("X", [1, 30], Array(repeating: 1, count: 30))
            var fp64Field = inferRequest("lr", [x], raw: false)
            var c = InferTensorContents()
            c.fp64Contents = Array(repeating: 1, count: 30)
            fp64Field.inputs[0].contents = c
            Self.expectInvalid(fp64Field, manager, mentioning: "fp32_contents")

            var twoFields = inferRequest("lr", [x], raw: false)
            twoFields.inputs[0].contents?.int64Contents = Array(repeating: 1, count: 30)
            Self.expectInvalid(twoFields, manager, mentioning: "fp32_contents")

            // INT8 travels in int_contents, UINT8 in uint_contents: not the other way round.
            let ints: [WireTensor] = [.int8("a", [1, 2], [1, 2]), .int16("b", [1, 2], [1, 2]), .uint8("c", [1, 2], [1, 2])]
            var swapped = inferRequest("small_ints", ints, raw: false)
            var u = InferTensorContents()
            u.uintContents = [1, 2]
            swapped.inputs[0].contents = u
            Self.expectInvalid(swapped, manager, mentioning: "int_contents")
            var signedUInt8 = inferRequest("small_ints", ints, raw: false)
            var s = InferTensorContents()
            s.intContents = [1, 2]
            signedUInt8.inputs[2].contents = s
            Self.expectInvalid(signedUInt8, manager, mentioning: "uint_contents")
        }
    }

    /// Typed INT8, INT16 and UINT8 arrive widened to 32 bits: every value must fit the declared
    /// type, the extremes included.
    @Test func narrowIntegerRangesAreChecked() throws {
        try Self.withModels([Self.smallInts]) { manager in
            func request(a: [Int32], b: [Int32], c: [UInt32]) -> ModelInferRequest {
                var r = inferRequest("small_ints", [.int8("a", [1, 2], [0, 0]), .int16("b", [1, 2], [0, 0]), .uint8("c", [1, 2], [0, 0])], raw: false)
                r.inputs[0].contents?.intContents = a
                r.inputs[1].contents?.intContents = b
                r.inputs[2].contents?.uintContents = c
                return r
            }
            let (inputs, _) = try Self.decode(request(a: [-128, 127], b: [-32768, 32767], c: [0, 255]), manager)
            #expect(inputs.map(\.data) == [.int8([-128, 127]), .int16([-32768, 32767]), .uint8([0, 255])])

            Self.expectInvalid(request(a: [-129, 0], b: [0, 0], c: [0, 0]), manager, mentioning: "'a'")
            Self.expectInvalid(request(a: [0, 128], b: [0, 0], c: [0, 0]), manager, mentioning: "'a'")
            Self.expectInvalid(request(a: [0, 0], b: [-32769, 0], c: [0, 0]), manager, mentioning: "'b'")
            Self.expectInvalid(request(a: [0, 0], b: [0, 32768], c: [0, 0]), manager, mentioning: "'b'")
            Self.expectInvalid(request(a: [0, 0], b: [0, 0], c: [0, 256]), manager, mentioning: "'c'")
            Self.expectInvalid(request(a: [0, 0], b: [0, 0], c: [0, .max]), manager, mentioning: "'c'")
        }
    }

    /// Raw narrow integers are one or two little-endian bytes per element, and the byte count must
    /// be whole elements of the shape.
    @Test func rawNarrowIntegers() throws {
        try Self.withModels([Self.smallInts]) { manager in
            let ints: [WireTensor] = [.int8("a", [1, 2], [-1, 2]), .int16("b", [1, 2], [-2, 0x1234]), .uint8("c", [1, 2], [255, 7])]
            let request = inferRequest("small_ints", ints, raw: true)
            #expect(request.rawInputContents == [[0xFF, 0x02], [0xFE, 0xFF, 0x34, 0x12], [0xFF, 0x07]])
            let decoded = try Self.decode(request, manager)
            #expect(decoded.inputs.map(\.data) == [.int8([-1, 2]), .int16([-2, 0x1234]), .uint8([255, 7])])
            var odd = request
            odd.rawInputContents[1] = [0xFE, 0xFF, 0x34]
            Self.expectInvalid(odd, manager, mentioning: "'b'")
        }
    }

    /// Raw contents are all or nothing: one entry per input, and no input may also carry typed values.
    @Test func rawAndTypedContentsDoNotMix() throws {
        let cat = WireTensor.int64("cat", [2, 2], [0, 1, 1, 0])
        let num = WireTensor.fp32("num", [2, 3], [1, 2, 3, 4, 5, 6])
        try Self.withModels([Self.two]) { manager in
            let typed = try Self.decode(inferRequest("two", [cat, num], raw: false), manager)
            #expect(try Self.decode(inferRequest("two", [cat, num], raw: true), manager).inputs == typed.inputs)

            var oneRawEntry = inferRequest("two", [cat, num], raw: true)
            oneRawEntry.rawInputContents.removeLast()
            Self.expectInvalid(oneRawEntry, manager, mentioning: "raw_input_contents")

            var rawPlusTyped = inferRequest("two", [cat, num], raw: true)
            rawPlusTyped.inputs[1].contents = num.contents
            Self.expectInvalid(rawPlusTyped, manager, mentioning: "'num'")

            var typedWithStrayRaw = inferRequest("two", [cat, num], raw: false)
            typedWithStrayRaw.rawInputContents = [cat.rawBytes]
            Self.expectInvalid(typedWithStrayRaw, manager, mentioning: "raw_input_contents")
        }
    }

    /// Inputs are placed by name in the model's order, whatever order the request uses; a name
    /// given twice or unknown is refused.
    @Test func inputsArePlacedByName() throws {
        let cat = WireTensor.int64("cat", [2, 2], [0, 1, 1, 0])
        let num = WireTensor.fp32("num", [2, 3], [1, 2, 3, 4, 5, 6])
        try Self.withModels([Self.two]) { manager in
            let inOrder = try Self.decode(inferRequest("two", [cat, num], raw: true), manager)
            let reversed = try Self.decode(inferRequest("two", [num, cat], raw: true), manager)
            #expect(reversed.inputs == inOrder.inputs)
            #expect(reversed.rows == 2)
            Self.expectInvalid(inferRequest("two", [num, cat, num], raw: false), manager, mentioning: "'num'")
            Self.expectInvalid(inferRequest("two", [cat, num, cat], raw: false), manager, mentioning: "'cat'")
            var unknown = num
            unknown.name = "nums"
            Self.expectInvalid(inferRequest("two", [cat, unknown], raw: false), manager, mentioning: "'nums'")
        }
    }

    @Test func unsupportedDatatypesAreNamed() throws {
        try Self.withModels([Self.lr]) { manager in
            for datatype in ["FP33", "FP16", "UINT64", "fp32", ""] {
                var x = WireTensor.fp32("X", [1, 30], Array(repeating: 0, count: 30))
                x.datatype = datatype
                Self.expectInvalid(inferRequest("lr", [x], raw: true), manager, mentioning: "'\(datatype)'")
            }
        }
    }
}
