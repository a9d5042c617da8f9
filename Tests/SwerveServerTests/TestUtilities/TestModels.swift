import Foundation
import SwerveProto
import SwerveTesting

/// Models the tests build themselves, for datatypes none of the fixtures take.
enum TestModels {
    static let smallInts = TestModel.onnx(smallIntsTestModelONNX, as: "small_ints")

    /// Every fixture with onnxruntime's outputs (`<name>.json` beside `<name>.onnx`): linear and
    /// logistic models, scikit-learn pipelines, MLPs, one-hot categorical models with BYTES and
    /// INT64 columns, the ML operators, a PyTorch embedding, models whose outputs are not per row.
    static let referenceFixtures: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: PackagePaths.inferenceFixtures.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }()
}
