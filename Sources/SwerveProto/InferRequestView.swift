internal import CSwerveProto
#if canImport(Glibc)
import Glibc
#endif

// The server's way to read a ModelInferRequest: in place, in the unpacked protobuf-c struct,
// without first copying every field into `ModelInferRequest`'s Swift values. The struct lives
// in the thread's scratch arena, so a one-row request is decoded without a malloc; the server
// copies only the tensor values it keeps.

/// A decoded `ModelInferRequest`, valid only inside `ModelInferRequest.withView`.
/// Parameters are not exposed (the server reads none). Do not keep it, or anything it returns
/// as a buffer, past that call: the memory is recycled.
public struct ModelInferRequestView {
    private let m: UnsafeMutablePointer<Inference__ModelInferRequest>

    fileprivate init(_ m: UnsafeMutablePointer<Inference__ModelInferRequest>) { self.m = m }

    public var modelName: String { str(m.pointee.model_name) }
    /// `modelName`'s UTF-8, without making a String.
    public var modelNameBytes: UnsafeRawBufferPointer { cStringView(m.pointee.model_name) }
    public var modelVersion: String { str(m.pointee.model_version) }
    public var id: String { str(m.pointee.id) }

    public var inputCount: Int { m.pointee.inputs == nil ? 0 : m.pointee.n_inputs }
    /// Input `i` (0 ..< inputCount).
    public func input(_ i: Int) -> InferInputView { InferInputView(m.pointee.inputs[i]!) }

    public var requestedOutputCount: Int { m.pointee.outputs == nil ? 0 : m.pointee.n_outputs }
    public func requestedOutputName(_ i: Int) -> String { str(m.pointee.outputs[i]!.pointee.name) }

    public var rawInputContentsCount: Int { m.pointee.raw_input_contents == nil ? 0 : m.pointee.n_raw_input_contents }
    public func rawInputContents(_ i: Int) -> UnsafeRawBufferPointer { rawView(m.pointee.raw_input_contents[i]) }
}

/// One input tensor of a `ModelInferRequestView`; its buffers are valid as long as the view.
public struct InferInputView {
    private let t: UnsafeMutablePointer<Inference__ModelInferRequest__InferInputTensor>

    fileprivate init(_ t: UnsafeMutablePointer<Inference__ModelInferRequest__InferInputTensor>) { self.t = t }

    /// The name's UTF-8 bytes (no terminating NUL).
    public var nameBytes: UnsafeRawBufferPointer { cStringView(t.pointee.name) }
    public var name: String { str(t.pointee.name) }
    public var datatypeBytes: UnsafeRawBufferPointer { cStringView(t.pointee.datatype) }
    public var datatype: String { str(t.pointee.datatype) }
    public var shape: UnsafeBufferPointer<Int64> { UnsafeBufferPointer(start: t.pointee.shape, count: t.pointee.shape == nil ? 0 : t.pointee.n_shape) }
    /// The typed contents, nil when the message has none.
    public var contents: InferContentsView? { t.pointee.contents.map(InferContentsView.init) }
}

/// The typed `contents` of an input: one buffer per field.
public struct InferContentsView {
    private let c: UnsafeMutablePointer<Inference__InferTensorContents>

    fileprivate init(_ c: UnsafeMutablePointer<Inference__InferTensorContents>) { self.c = c }

    /// protobuf-c keeps `bool` as a 32-bit int.
    public var bool: UnsafeBufferPointer<Int32> { buffer(c.pointee.bool_contents, c.pointee.n_bool_contents) }
    public var int32: UnsafeBufferPointer<Int32> { buffer(c.pointee.int_contents, c.pointee.n_int_contents) }
    public var int64: UnsafeBufferPointer<Int64> { buffer(c.pointee.int64_contents, c.pointee.n_int64_contents) }
    public var uint32: UnsafeBufferPointer<UInt32> { buffer(c.pointee.uint_contents, c.pointee.n_uint_contents) }
    public var uint64: UnsafeBufferPointer<UInt64> { buffer(c.pointee.uint64_contents, c.pointee.n_uint64_contents) }
    public var fp32: UnsafeBufferPointer<Float> { buffer(c.pointee.fp32_contents, c.pointee.n_fp32_contents) }
    public var fp64: UnsafeBufferPointer<Double> { buffer(c.pointee.fp64_contents, c.pointee.n_fp64_contents) }
    public var bytesCount: Int { c.pointee.bytes_contents == nil ? 0 : c.pointee.n_bytes_contents }
    public func bytes(_ i: Int) -> UnsafeRawBufferPointer { rawView(c.pointee.bytes_contents[i]) }

    /// Values over all fields.
    public var count: Int {
        bool.count + int32.count + int64.count + uint32.count + uint64.count + fp32.count + fp64.count + bytesCount
    }
}

@inline(__always)
private func buffer<T>(_ p: UnsafeMutablePointer<T>?, _ n: Int) -> UnsafeBufferPointer<T> {
    UnsafeBufferPointer(start: p, count: p == nil ? 0 : n)
}

@inline(__always)
private func rawView(_ b: ProtobufCBinaryData) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: b.data, count: b.data == nil ? 0 : b.len)
}

@inline(__always)
private func cStringView(_ p: UnsafeMutablePointer<CChar>?) -> UnsafeRawBufferPointer {
    guard let p else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: p, count: strlen(p))
}

extension ModelInferRequest {
    /// Decodes `bytes` and hands `body` a view of the request, valid only during the call.
    /// Refuses the same inputs as `init(serializedBytes:)`.
    ///
    /// This one, for a body that keeps what it needs itself (in a variable it captures), is not
    /// generic, so a caller in another module runs code specialized here: the generic one,
    /// called from another module, instantiates type metadata for its result on every call.
    public static func withView(_ bytes: UnsafeRawBufferPointer, _ body: (ModelInferRequestView) throws -> Void) throws {
        try decodeView(bytes, body)
    }

    /// Decodes `bytes` and hands `body` a view of the request, valid only during the call, and
    /// returns what `body` returns. Refuses the same inputs as `init(serializedBytes:)`.
    public static func withView<R>(_ bytes: UnsafeRawBufferPointer, _ body: (ModelInferRequestView) throws -> R) throws -> R {
        try decodeView(bytes, body)
    }

    private static func decodeView<R>(_ bytes: UnsafeRawBufferPointer, _ body: (ModelInferRequestView) throws -> R) throws -> R {
        if StringFields.modelInferRequest.containsNUL(in: bytes) {
            throw ProtoDecodingError("ModelInferRequest has a string field containing a NUL byte")
        }
        return try decode(bytes, "ModelInferRequest", unpack: inference__model_infer_request__unpack,
                          free: inference__model_infer_request__free_unpacked) { m in
            try body(ModelInferRequestView(m))
        }
    }
}
