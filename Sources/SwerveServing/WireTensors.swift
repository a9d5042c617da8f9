import SwerveProto

/// Tensors of a ModelInfer message read back as values, without a model to check them against
/// (the drift monitor and the label join read messages the server already answered).
public enum WireTensors {
    /// Largest element count read back for one tensor.
    public static let maxElements = 1 << 28

    /// One tensor's values from its datatype, shape and typed contents or raw bytes; nil when
    /// they do not decode.
    public static func values(datatype: String, shape: [Int64], contents: InferTensorContents?, raw: [UInt8]?) -> (shape: [Int], values: TensorValues)? {
        guard let type = TensorValues.ElementType(rawValue: datatype) else { return nil }
        var count = 1
        for d in shape {
            guard d >= 0, d <= Int64(maxElements) else { return nil }
            let (p, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, p <= maxElements else { return nil }
            count = p
        }
        let dims = shape.map { Int($0) }
        do {
            if let raw {
                return (dims, try raw.withUnsafeBytes { try TensorValues(rawBytes: $0, as: type, shape: dims) })
            }
            return (dims, try TensorValues(contents: contents ?? InferTensorContents(), as: type, shape: dims))
        } catch {
            return nil
        }
    }

    /// A request's inputs by name; nil when the message or a tensor does not decode.
    public static func inputs(ofRequest bytes: [UInt8]) -> [String: (shape: [Int], values: TensorValues)]? {
        guard let r = try? ModelInferRequest(serializedBytes: bytes) else { return nil }
        var out: [String: (shape: [Int], values: TensorValues)] = [:]
        for (j, t) in r.inputs.enumerated() {
            let raw = r.rawInputContents.isEmpty ? nil : (j < r.rawInputContents.count ? r.rawInputContents[j] : [])
            guard let v = values(datatype: t.datatype, shape: t.shape, contents: t.contents, raw: raw) else { return nil }
            out[t.name] = v
        }
        return out
    }

    /// A response's outputs in the order it carries them; nil when it does not decode.
    public static func outputs(ofResponse bytes: [UInt8]) -> [(name: String, shape: [Int], values: TensorValues)]? {
        guard let r = try? ModelInferResponse(serializedBytes: bytes) else { return nil }
        var out: [(name: String, shape: [Int], values: TensorValues)] = []
        for (j, t) in r.outputs.enumerated() {
            let raw = r.rawOutputContents.isEmpty ? nil : (j < r.rawOutputContents.count ? r.rawOutputContents[j] : [])
            guard let v = values(datatype: t.datatype, shape: t.shape, contents: t.contents, raw: raw) else { return nil }
            out.append((t.name, v.shape, v.values))
        }
        return out
    }
}
