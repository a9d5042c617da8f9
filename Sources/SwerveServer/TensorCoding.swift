import SwerveInference
import SwerveProto
import SwerveServing

/// Converts between the wire's input/output tensors (typed `contents` or raw bytes) and `Tensor`.
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
        let n = dims.reduce(1, *)
        let data: TensorData
        let used: Int
        switch dt {
        case .fp32: let v = contents?.fp32 ?? .init(start: nil, count: 0); data = .fp32(Array(v)); used = v.count
        case .fp64: let v = contents?.fp64 ?? .init(start: nil, count: 0); data = .fp64(Array(v)); used = v.count
        case .int64: let v = contents?.int64 ?? .init(start: nil, count: 0); data = .int64(Array(v)); used = v.count
        case .int32: let v = contents?.int32 ?? .init(start: nil, count: 0); data = .int32(Array(v)); used = v.count
        case .int16:
            let v = contents?.int32 ?? .init(start: nil, count: 0)
            guard v.allSatisfy({ Int16(exactly: $0) != nil }) else { throw ServingError(.invalidArgument, "input '\(input.name)': INT16 value out of range") }
            data = .int16(v.map { Int16($0) }); used = v.count
        case .int8:
            let v = contents?.int32 ?? .init(start: nil, count: 0)
            guard v.allSatisfy({ Int8(exactly: $0) != nil }) else { throw ServingError(.invalidArgument, "input '\(input.name)': INT8 value out of range") }
            data = .int8(v.map { Int8($0) }); used = v.count
        case .uint8:
            let v = contents?.uint32 ?? .init(start: nil, count: 0)
            guard v.allSatisfy({ $0 <= 255 }) else { throw ServingError(.invalidArgument, "input '\(input.name)': UINT8 value out of range") }
            data = .uint8(v.map { UInt8($0) }); used = v.count
        case .bool: let v = contents?.bool ?? .init(start: nil, count: 0); data = .bool(v.map { $0 != 0 }); used = v.count
        case .bytes:
            let k = contents?.bytesCount ?? 0
            data = .bytes((0..<k).map { Array(contents!.bytes($0)) }); used = k
        }
        guard used == (contents?.count ?? 0) else {
            throw ServingError(.invalidArgument, "input '\(input.name)': \(dt.rawValue) values must be in the \(field(dt)) field of contents only")
        }
        guard used == n else {
            throw ServingError(.invalidArgument, "input '\(input.name)': shape \(dims) needs \(n) values, got \(used)")
        }
        return Tensor(shape: dims, data: data)
    }

    static func field(_ dt: DataType) -> String {
        switch dt {
        case .fp32: "fp32_contents"
        case .fp64: "fp64_contents"
        case .int64: "int64_contents"
        case .int32, .int16, .int8: "int_contents"
        case .uint8: "uint_contents"
        case .bool: "bool_contents"
        case .bytes: "bytes_contents"
        }
    }

    /// A tensor's values as the response's typed contents field takes them.
    static func values(_ t: Tensor) -> InferOutputValues {
        switch t.data {
        case .fp32(let v): .fp32(v)
        case .fp64(let v): .fp64(v)
        case .int64(let v): .int64(v)
        case .int32(let v): .int32(v)
        case .int16(let v): .int16(v)
        case .int8(let v): .int8(v)
        case .uint8(let v): .uint8(v)
        case .bool(let v): .bool(v)
        case .bytes(let v): .bytes(v)
        }
    }
}
