import Foundation
import SwerveProto
import Testing

@Suite("ONNX model coding")
struct ONNXCodingTests {
    static let model = ONNXModel(
        irVersion: 8,
        opsetImports: [ONNXOperatorSetID(domain: "", version: 17), ONNXOperatorSetID(domain: "ai.onnx.ml", version: 3)],
        producerName: "swerve-tests", producerVersion: "1.0", domain: "dev.swerve", modelVersion: 3,
        docString: "a test model",
        graph: ONNXGraph(
            name: "g",
            nodes: [
                ONNXNode(name: "fc", opType: "Gemm", inputs: ["X", "W", "B"], outputs: ["H"], attributes: [
                    "transB": .int(1), "alpha": .float(0.5), "beta": .float(1),
                ]),
                ONNXNode(name: "act", opType: "LeakyRelu", inputs: ["H"], outputs: ["A"], attributes: ["alpha": .float(0.1)]),
                ONNXNode(name: "norm", opType: "Normalizer", domain: "ai.onnx.ml", inputs: ["A"], outputs: ["Y"],
                         attributes: ["norm": .string("L2")]),
                ONNXNode(name: "lc", opType: "LinearClassifier", domain: "ai.onnx.ml", inputs: ["Y", ""], outputs: ["L", "S"],
                         attributes: [
                            "coefficients": .floats([1, 2, 3, 4]), "intercepts": .floats([0.5, -0.5]),
                            "classlabels_strings": .strings(["cat", "dog"]), "classlabels_ints": .ints([]),
                            "value": .tensor(.int64s("t", dims: [2], [1, 2])),
                         ]),
            ],
            initializers: [
                .floats("W", dims: [2, 3], [1, 2, 3, 4, 5, 6]),
                ONNXTensor(name: "B", dims: [2], dataType: 1, rawData: [0, 0, 128, 63, 0, 0, 0, 64]),
                ONNXTensor(name: "D", dims: [1], dataType: 11, doubleData: [2.5]),
                ONNXTensor(name: "S", dims: [2], dataType: 8, stringData: [Array("a".utf8), []]),
                ONNXTensor(name: "I", dims: [3], dataType: 6, int32Data: [-1, 0, 7]),
            ],
            inputs: [
                .tensor("X", elemType: 1, shape: [nil, 3]),
                ONNXValueInfo(name: "Z", elemType: 7, shape: [.unknown, .param("batch"), .value(0)]),
                ONNXValueInfo(name: "R", elemType: 1, shape: nil),
            ],
            outputs: [.tensor("L", elemType: 8, shape: [nil]), .tensor("S", elemType: 1, shape: [nil, 2])],
            valueInfo: [ONNXValueInfo(name: "seq", isTensor: false, elemType: 0, shape: nil)]),
        metadata: ["author": "swerve", "version": "3"])

    @Test("decode(encode(m)) == m")
    func roundTrip() throws {
        let bytes = Self.model.encode()
        #expect(!bytes.isEmpty)
        let decoded = try ONNXModel.decode(bytes)
        #expect(decoded == Self.model)
        #expect(decoded.encode() == bytes)
        #expect(decoded.opsetVersion(for: "ai.onnx") == 17)
        #expect(decoded.opsetVersion(for: "ai.onnx.ml") == 3)
        #expect(decoded.opsetVersion(for: "com.microsoft") == nil)
    }

    @Test("attribute accessors")
    func attributes() throws {
        let node = Self.model.graph.nodes[3]
        #expect(node.attributes["classlabels_strings"]?.stringsValue == ["cat", "dog"])
        #expect(node.attributes["coefficients"]?.floatsValue == [1, 2, 3, 4])
        #expect(Self.model.graph.nodes[2].attributes["norm"]?.stringValue == "L2")
        #expect(Self.model.graph.nodes[0].attributes["transB"]?.intValue == 1)
        #expect(node.attributes["value"]?.tensorValue?.int64Data == [1, 2])
    }

    @Test("rejects bytes that are not a ModelProto with a clear error")
    func garbage() {
        for bytes in [[UInt8](), [0xff, 0xff, 0xff], Array("not an onnx model at all".utf8), [0x3a, 0x05, 0x0a]] {
            #expect {
                _ = try ONNXModel.decode(bytes)
            } throws: { error in
                (error as? ONNXDecodingError)?.description.hasPrefix("invalid ONNX model:") == true
            }
        }
    }

    @Test("a model without a graph is rejected")
    func noGraph() {
        // Field 1 (ir_version) = 8, and nothing else.
        #expect(throws: ONNXDecodingError.self) { _ = try ONNXModel.decode([0x08, 0x08]) }
    }

    /// onnxruntime, a loader nobody here wrote, accepts what `encode` writes.
    @Test(
        "onnxruntime loads and runs an encoded model",
        .enabled(if: FileManager.default.fileExists(atPath: ONNXCodingTests.python)))
    func onnxruntimeLoads() throws {
        let model = ONNXModel(
            irVersion: 8, opsetImports: [ONNXOperatorSetID(domain: "", version: 17)], producerName: "swerve",
            graph: ONNXGraph(
                name: "g",
                nodes: [ONNXNode(name: "fc", opType: "Gemm", inputs: ["X", "W", "B"], outputs: ["Y"], attributes: ["transB": .int(1)])],
                initializers: [.floats("W", dims: [2, 3], [1, 2, 3, 4, 5, 6]), .floats("B", dims: [2], [0.5, -0.5])],
                inputs: [.tensor("X", elemType: 1, shape: [nil, 3])],
                outputs: [.tensor("Y", elemType: 1, shape: [nil, 2])]))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-\(UUID().uuidString).onnx")
        try Data(model.encode()).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let script = """
            import numpy as np, onnxruntime as ort, sys
            s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
            print(s.run(None, {"X": np.array([[1, 1, 1]], dtype=np.float32)})[0].tolist())
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = ["-c", script, path.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0)
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines) == "[[6.5, 14.5]]")
    }

    static let python: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.venv/bin/python").standardized.path
}
