import SwerveInference
import SwerveProto
import SwerveServing

/// Converts the wire's input tensors (typed `contents` or raw bytes) to `Tensor`s. Outputs need no
/// conversion: the response encoder takes a tensor's `TensorData` as it is.
enum TensorCoding {
    /// Largest element count accepted for one tensor (the message size limit bounds it too).
    static let maxElements = 1 << 28

    static func shape(_ dims: UnsafeBufferPointer<Int64>, name: @autoclosure () -> String) throws(ServingError) -> [Int] {
        var count = 1
        var out: [Int] = []
        out.reserveCapacity(dims.count)
        for d in dims {
            guard d >= 0, d <= Int64(maxElements) else {
                throw ServingError(.invalidArgument, "input '\(name())': invalid dimension \(d) in shape \(Array(dims))")
            }
            let (p, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, p <= maxElements else {
                throw ServingError(.invalidArgument, "input '\(name())': shape \(Array(dims)) is too large")
            }
            count = p
            out.append(Int(d))
        }
        return out
    }

    /// The request's inputs as tensors in the model's input order, checked against the model
    /// (names, datatypes, shapes, batch size), with the number of rows. Reads the request in place.
    static func inputs(of request: ModelInferRequestView, for model: ServedModel) throws(ServingError) -> (inputs: [Tensor], rows: Int) {
        let count = request.inputCount
        let rawCount = request.rawInputContentsCount
        let raw = rawCount > 0
        if raw && rawCount != count {
            throw ServingError(.invalidArgument, "raw_input_contents has \(rawCount) entries but there are \(count) inputs; give one per input, in order")
        }
        // Inputs usually come in the model's order: keep them in one array, and reorder only
        // once one arrives out of place.
        var inOrder: [Tensor] = []
        inOrder.reserveCapacity(count)
        var ordered: [Tensor?]?
        for i in 0..<count {
            let input = request.input(i)
            let tensor = try self.tensor(input, raw: raw ? request.rawInputContents(i) : nil)
            guard let position = model.inputPosition(utf8: input.nameBytes) else { throw model.unknownInput(input.name) }
            if ordered == nil {
                if position == i { inOrder.append(tensor); continue }
                var placed = [Tensor?](repeating: nil, count: model.inputs.count)
                for (j, t) in inOrder.enumerated() { placed[j] = t }
                ordered = placed
            }
            guard ordered![position] == nil else { throw ServedModel.duplicateInput(input.name) }
            ordered![position] = tensor
        }
        if let ordered { return try model.validate(ordered: ordered) }
        return try model.validate(inOrder: inOrder)
    }

    private static func tensor(_ input: InferInputView, raw: UnsafeRawBufferPointer?) throws(ServingError) -> Tensor {
        guard let dt = DataType(utf8: input.datatypeBytes) else {
            throw ServingError(.invalidArgument, "input '\(input.name)': unsupported datatype '\(input.datatype)' (supported: \(DataType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let dims = try shape(input.shape, name: input.name)
        let contents = input.contents
        if let raw {
            if let contents, contents.count > 0 {
                throw ServingError(.invalidArgument, "input '\(input.name)' has both contents and raw_input_contents; use one")
            }
            do {
                return try Tensor(rawBytes: raw, dataType: dt, shape: dims)
            } catch {
                throw ServingError(.invalidArgument, "input '\(input.name)': raw contents do not match \(dt.rawValue) shape \(dims): \(error)")
            }
        }
        do {
            return Tensor(shape: dims, data: try TensorData(contents: contents, as: dt.elementType, shape: dims))
        } catch {
            throw ServingError(.invalidArgument, "input '\(input.name)': \(error.message)")
        }
    }
}
