// libFuzzer target: loading a model file, as the server does for each version: ONNX decoding
// (protobuf-c, then SwerveProto's value types), the graph compile (checks, constant folding,
// type and shape inference, slot assignment), then the warm-up run on one row of zeros that
// `ServedModel` makes before a version takes traffic.
//
// Input: the bytes of a model.onnx. Any outcome but a returned model or a thrown error is a
// finding: a trap, an ASan report, or an allocation above libFuzzer's -malloc_limit_mb (a few
// bytes that declare a huge tensor).
@testable import SwerveInference
import SwerveProto

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let model = try? CompiledModel(onnxBytes: bytes) else { return 0 }
    // ServedModel's warm-up: one row of zeros, the batch dimension as 1.
    let warm = model.inputs.map { info in Tensor(zeros: info.dataType, shape: info.shape.map { $0 < 0 ? 1 : $0 }) }
    _ = try? model.makeExecutor().run(warm)
    return 0
}
