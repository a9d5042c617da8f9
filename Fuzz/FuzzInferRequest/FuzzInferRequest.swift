// libFuzzer target: the ModelInferRequest decoders, the server's in-place view
// (`ModelInferRequest.withView`) against the copying decoder (`init(serializedBytes:)`).
//
// Input: the message bytes, as the deframer hands them over. Both decoders must refuse the same
// inputs, read the same values (compared as re-encoded bytes, so NaNs compare equal), and a
// decoded message must survive encode → decode unchanged. Any disagreement or trap is a finding.
@testable import SwerveProto

/// Everything the view exposes, copied out into the Swift message type.
func snapshot(_ view: ModelInferRequestView) -> ModelInferRequest {
    var r = ModelInferRequest()
    r.modelName = view.modelName
    r.modelVersion = view.modelVersion
    r.id = view.id
    for i in 0..<view.inputCount {
        let input = view.input(i)
        // The String accessors repair invalid UTF-8 (the wire does not promise it); otherwise
        // they must read the same bytes.
        for (bytes, text) in [(input.nameBytes, input.name), (input.datatypeBytes, input.datatype)]
        where String(validating: Array(bytes), as: UTF8.self) != nil && Array(bytes) != Array(text.utf8) {
            fatalError("input \(i): the byte and String accessors disagree")
        }
        var tensor = ModelInferRequest.InputTensor(name: input.name, datatype: input.datatype, shape: Array(input.shape))
        if let c = input.contents {
            var contents = InferTensorContents()
            contents.boolContents = c.bool.map { $0 != 0 }
            contents.intContents = Array(c.int32)
            contents.int64Contents = Array(c.int64)
            contents.uintContents = Array(c.uint32)
            contents.uint64Contents = Array(c.uint64)
            contents.fp32Contents = Array(c.fp32)
            contents.fp64Contents = Array(c.fp64)
            contents.bytesContents = (0..<c.bytesCount).map { Array(c.bytes($0)) }
            guard c.count == contents.count else { fatalError("input \(i): InferContentsView.count is wrong") }
            tensor.contents = contents
        }
        r.inputs.append(tensor)
    }
    r.outputs = (0..<view.requestedOutputCount).map { .init(name: view.requestedOutputName($0)) }
    r.rawInputContents = (0..<view.rawInputContentsCount).map { Array(view.rawInputContents($0)) }
    return r
}

func withoutParameters(_ r: ModelInferRequest) -> ModelInferRequest {
    var r = r
    r.parameters = [:]
    for i in r.inputs.indices { r.inputs[i].parameters = [:] }
    for i in r.outputs.indices { r.outputs[i].parameters = [:] }
    return r
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInferRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let decoded = try? ModelInferRequest(serializedBytes: bytes)
    let viewed = try? bytes.withUnsafeBytes { try ModelInferRequest.withView($0) { snapshot($0) } }
    switch (decoded, viewed) {
    case (nil, nil):
        return 0
    case (let d?, let v?):
        let encoded = d.serializedBytes()
        guard withoutParameters(d).serializedBytes() == v.serializedBytes() else {
            fatalError("the view reads other values than the decoder")
        }
        guard let again = try? ModelInferRequest(serializedBytes: encoded), again.serializedBytes() == encoded else {
            fatalError("a decoded request does not survive encode → decode")
        }
    default:
        fatalError("one decoder accepts what the other refuses (decoder: \(decoded != nil), view: \(viewed != nil))")
    }
    return 0
}
