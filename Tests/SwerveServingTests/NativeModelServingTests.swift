import Foundation
import Logging
import SwerveInference
import SwerveRepository
import Testing
@testable import SwerveServing

/// A version folder may hold a native XGBoost or LightGBM model instead of model.onnx; it then
/// serves through the same paths. A folder with two model files is refused, naming both.
@Suite struct NativeModelServingTests {
    static let lightGBM = TreeEnsembleTests_lightGBMStump

    func repository(_ files: [String: String], config: String? = nil) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-native-\(UUID())")
        let dir = root.appendingPathComponent("m/1")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, text) in files { try Data(text.utf8).write(to: dir.appendingPathComponent(name)) }
        if let config { try Data(config.utf8).write(to: root.appendingPathComponent("m/config.json")) }
        return root
    }

    func manager(_ root: URL) -> ModelManager {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return ModelManager(repository: ModelRepository(path: root.path), logger: logger)
    }

    @Test func aLightGBMVersionIsCompleteAndServes() throws {
        let root = try repository(["model.lgb.txt": Self.lightGBM], config: #"{"inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 2]}]}"#)
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(ModelRepository(path: root.path).versions(of: "m") == [1])
        let mm = manager(root)
        defer { mm.shutdown() }
        try mm.loadAll()
        let m = try mm.resolve(model: "m", version: "")
        // The input takes config.json's name; the output is predict's vector.
        #expect(m.inputs.map(\.name) == ["features"])
        #expect(m.outputs.map(\.shape) == [[-1]])
        let (inputs, rows) = try m.validate([("features", Tensor(shape: [2, 2], data: .fp32([0, 0.1, 0, 0.9])))])
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<[Tensor], ServingError>?
        m.infer(inputs, rows: rows, deadlineNs: nil, isCancelled: { false }) { r in result = r; done.signal() }
        #expect(done.wait(timeout: .now() + 10) == .success)
        let out = try #require(try result?.get())
        guard case .fp32(let p) = out[0].data else { Issue.record("not FP32"); return }
        #expect(p == [Float(1 / (1 + exp(1.0))), Float(1 / (1 + exp(-1.0)))])
    }

    @Test func twoModelFilesInOneVersionAreRefused() throws {
        let root = try repository(["model.lgb.txt": Self.lightGBM, "model.xgb.json": "{}"])
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = manager(root)
        defer { mm.shutdown() }
        try? mm.loadAll()  // a model that fails to load is reported in the index, not thrown
        let entry = mm.index().first { $0.name == "m" }
        #expect(entry?.reason.contains("model.xgb.json and model.lgb.txt") == true, "\(String(describing: entry))")
    }
}

/// The LightGBM stump of `TreeEnsembleTests` (one split on feature 1 at 0.5; leaves -1 and 1).
let TreeEnsembleTests_lightGBMStump = try! String(
    contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SwerveInferenceTests/Fixtures/stump.lgb.txt"),
    encoding: .utf8)
