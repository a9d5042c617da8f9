import Foundation
import SwerveProto
import SwerveTesting

/// Models the tests build themselves, for datatypes none of the fixtures take.
enum TestModels {
    /// `small_ints`: INT8 `a`, INT16 `b` and UINT8 `c`, each `[-1, 2]`, returned unchanged as
    /// `a_out`, `b_out`, `c_out` (Identity), so both directions of the narrow integer coding show.
    static let smallIntsONNX: [UInt8] = {
        let types: [(String, Int32)] = [
            ("a", ONNXTensor.DataTypeCode.int8), ("b", ONNXTensor.DataTypeCode.int16), ("c", ONNXTensor.DataTypeCode.uint8),
        ]
        let graph = ONNXGraph(
            name: "small_ints",
            nodes: types.map { ONNXNode(opType: "Identity", inputs: [$0.0], outputs: [$0.0 + "_out"]) },
            inputs: types.map { .tensor($0.0, elemType: $0.1, shape: [nil, 2]) },
            outputs: types.map { .tensor($0.0 + "_out", elemType: $0.1, shape: [nil, 2]) })
        return ONNXModel(irVersion: 8, opsetImports: [ONNXOperatorSetID(domain: "", version: 17)],
                         producerName: "swerve-server-tests", graph: graph).encode()
    }()

    static let smallInts = TestModel.onnx(smallIntsONNX, as: "small_ints")

    /// Every fixture with onnxruntime's outputs (`<name>.json` beside `<name>.onnx`): linear and
    /// logistic models, scikit-learn pipelines, MLPs, one-hot categorical models with BYTES and
    /// INT64 columns, the ML operators, a PyTorch embedding, models whose outputs are not per row.
    static let referenceFixtures: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: PackagePaths.inferenceFixtures.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }()
}
