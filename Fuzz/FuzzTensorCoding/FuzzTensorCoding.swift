// libFuzzer target: a request's tensors, from the wire to typed values checked against a model,
// as the server reads them: `ModelInferRequest.withView`, then `TensorCoding.inputs(of:for:)`
// (datatype, shape and element-count checks, raw and typed contents, input order, batch size).
//
// Input: ModelInferRequest bytes. The models are the test fixtures (each under its fixture
// name, e.g. "lr_binary", "ct_onehot_string", "categorical_operators"), loaded once into a
// ModelManager over a temporary repository. A request either yields tensors that agree with
// their shapes and the model's inputs, or a ServingError (INVALID_ARGUMENT / NOT_FOUND / ...);
// anything else is a finding.
import Foundation
import Logging
import SwerveInference
import SwerveProto
import SwerveRepository
@testable import SwerveServer
import SwerveServing
import SwerveTesting

let manager: ModelManager = {
    let repository = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-fuzz-\(getpid())")
    try? FileManager.default.removeItem(at: repository)
    let fixtures = (try? FileManager.default.contentsOfDirectory(atPath: PackagePaths.inferenceFixtures.path)) ?? []
    do {
        try FileManager.default.createDirectory(at: repository, withIntermediateDirectories: true)
        for file in fixtures where file.hasSuffix(".onnx") {
            try TestModel.fixture(String(file.dropLast(5))).install(into: repository)
        }
        try TestModel.onnx(smallIntsTestModelONNX, as: "small_ints").install(into: repository)
        let manager = ModelManager(
            repository: ModelRepository(path: repository.path), logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        try manager.loadAll()
        try? FileManager.default.removeItem(at: repository)
        return manager
    } catch {
        fatalError("cannot load the fixture models from \(PackagePaths.inferenceFixtures.path): \(error)")
    }
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = manager
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTensorCoding(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    _ = try? ModelInferRequest.withView(bytes) { view -> Void in
        guard let model = try? manager.resolve(model: view.modelName, version: view.modelVersion) else { return }
        let decoded: (inputs: [Tensor], rows: Int)
        do {
            decoded = try TensorCoding.inputs(of: view, for: model)
        } catch {
            return  // a ServingError: the status the client gets
        }
        guard decoded.inputs.count == model.inputs.count else { fatalError("\(decoded.inputs.count) tensors for \(model.inputs.count) inputs") }
        for (tensor, info) in zip(decoded.inputs, model.inputs) {
            guard tensor.shape.reduce(1, *) == tensor.data.count else { fatalError("input '\(info.name)': shape \(tensor.shape) holds \(tensor.data.count) values") }
            guard tensor.dataType == info.dataType, tensor.shape.count == info.shape.count else {
                fatalError("input '\(info.name)': accepted \(tensor.dataType) \(tensor.shape) for \(info.dataType) \(info.shape)")
            }
        }
    }
    return 0
}
