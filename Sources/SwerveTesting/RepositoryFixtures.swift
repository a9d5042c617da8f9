import Foundation
import SwerveProto
import SwerveRepository

// Fixtures for tests of the repository and of what writes to it (the registry, the publisher,
// the training pipeline): one copy, shared by SwerveRepositoryTests and SwerveTrainingTests.

/// A fresh directory under the system temporary directory.
public func registryTestDirectory(_ label: String = "registry") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-\(label)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A tiny valid model: Y = X + bias, X float [N, 2].
public func registryTestModel(bias: Float = 1) -> [UInt8] {
    ONNXModel(
        irVersion: 8, opsetImports: [ONNXOperatorSetID(domain: "", version: 17)], producerName: "swerve-tests",
        graph: ONNXGraph(
            name: "add", nodes: [ONNXNode(opType: "Add", inputs: ["X", "B"], outputs: ["Y"])],
            initializers: [.floats("B", dims: [2], [bias, bias])],
            inputs: [.tensor("X", elemType: ONNXTensor.DataTypeCode.float, shape: [nil, 2])],
            outputs: [.tensor("Y", elemType: ONNXTensor.DataTypeCode.float, shape: [nil, 2])])
    ).encode()
}

/// The versions the server sees.
public func servedVersions(_ repo: URL, _ model: String) -> [Int] { ModelRepository(root: repo).versions(of: model) }

/// A lineage record with every field set, as a trainer would write it.
public func sampleLineage(_ metrics: [String: Double] = ["accuracy": 0.9]) -> Lineage {
    Lineage(
        dataFingerprint: "sha256:abc", rowCounts: .init(train: 800, validation: 100, holdout: 100),
        schema: .object(["columns": .array([.string("x")])]), hyperparameters: ["learning_rate": .number(0.1)],
        seed: 42, metrics: metrics, sliceMetrics: ["country=FR": ["accuracy": 0.85]],
        origin: .init(user: "tester", host: "localhost", jobID: "job-1"),
        timestamps: .init(started: Date(timeIntervalSince1970: 1_700_000_000), finished: Date(timeIntervalSince1970: 1_700_000_100)),
        extra: ["note": "hello"])
}


/// `small_ints`: INT8 `a`, INT16 `b` and UINT8 `c`, each `[-1, 2]`, returned unchanged as
/// `a_out`, `b_out`, `c_out` (Identity): the narrow integer datatypes no fixture takes, so both
/// directions of their coding show. Used by the server tests and the tensor-coding fuzzer.
public let smallIntsTestModelONNX: [UInt8] = {
    let types: [(String, Int32)] = [
        ("a", ONNXTensor.DataTypeCode.int8), ("b", ONNXTensor.DataTypeCode.int16), ("c", ONNXTensor.DataTypeCode.uint8),
    ]
    let graph = ONNXGraph(
        name: "small_ints",
        nodes: types.map { ONNXNode(opType: "Identity", inputs: [$0.0], outputs: [$0.0 + "_out"]) },
        inputs: types.map { .tensor($0.0, elemType: $0.1, shape: [nil, 2]) },
        outputs: types.map { .tensor($0.0 + "_out", elemType: $0.1, shape: [nil, 2]) })
    return ONNXModel(irVersion: 8, opsetImports: [ONNXOperatorSetID(domain: "", version: 17)],
                     producerName: "swerve-tests", graph: graph).encode()
}()
