import SwerveInference
import SwerveProto
import SwerveServing

/// Converts between the wire's input/output tensors (typed `contents` or raw bytes) and `Tensor`.
enum TensorCoding {
    /// Largest element count accepted for one tensor (the message size limit bounds it too).
    static let maxElements = 1 << 28

    static func shape(_ dims: [Int64], name: String) throws(ServingError) -> [Int] {
        var count = 1
        var out: [Int] = []
        out.reserveCapacity(dims.count)
        for d in dims {
            guard d >= 0, d <= Int64(maxElements) else {
                throw ServingError(.invalidArgument, "input '\(name)': invalid dimension \(d) in shape \(dims)")
            }
            let (p, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, p <= maxElements else {
                throw ServingError(.invalidArgument, "input '\(name)': shape \(dims) is too large")
            }
            count = p
            out.append(Int(d))
        }
        return out
    }

    /// The request's inputs as named tensors.
    static func inputs(of request: ModelInferRequest) throws(ServingError) -> [(String, Tensor)] {
        let raw = !request.rawInputContents.isEmpty
        if raw && request.rawInputContents.count != request.inputs.count {
            throw ServingError(.invalidArgument, "raw_input_contents has \(request.rawInputContents.count) entries but there are \(request.inputs.count) inputs; give one per input, in order")
        }
        var out: [(String, Tensor)] = []
        out.reserveCapacity(request.inputs.count)
        for (i, input) in request.inputs.enumerated() {
            guard let dt = DataType(rawValue: input.datatype) else {
                throw ServingError(.invalidArgument, "input '\(input.name)': unsupported datatype '\(input.datatype)' (supported: \(DataType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let dims = try shape(input.shape, name: input.name)
            if raw {
                if let c = input.contents, c.count > 0 {
                    throw ServingError(.invalidArgument, "input '\(input.name)' has both contents and raw_input_contents; use one")
                }
                do {
                    out.append((input.name, try Tensor(rawBytes: request.rawInputContents[i], dataType: dt, shape: dims)))
                } catch {
                    throw ServingError(.invalidArgument, "input '\(input.name)': raw contents do not match \(dt.rawValue) shape \(dims): \(error)")
                }
            } else {
                out.append((input.name, try typed(input.contents ?? InferTensorContents(), dt, dims, input.name)))
            }
        }
        return out
    }

    private static func typed(_ c: InferTensorContents, _ dt: DataType, _ dims: [Int], _ name: String) throws(ServingError) -> Tensor {
        let n = dims.reduce(1, *)
        let data: TensorData
        let used: Int
        switch dt {
        case .fp32: data = .fp32(c.fp32Contents); used = c.fp32Contents.count
        case .fp64: data = .fp64(c.fp64Contents); used = c.fp64Contents.count
        case .int64: data = .int64(c.int64Contents); used = c.int64Contents.count
        case .int32: data = .int32(c.intContents); used = c.intContents.count
        case .int16:
            guard c.intContents.allSatisfy({ Int16(exactly: $0) != nil }) else { throw ServingError(.invalidArgument, "input '\(name)': INT16 value out of range") }
            data = .int16(c.intContents.map { Int16($0) }); used = c.intContents.count
        case .int8:
            guard c.intContents.allSatisfy({ Int8(exactly: $0) != nil }) else { throw ServingError(.invalidArgument, "input '\(name)': INT8 value out of range") }
            data = .int8(c.intContents.map { Int8($0) }); used = c.intContents.count
        case .uint8:
            guard c.uintContents.allSatisfy({ $0 <= 255 }) else { throw ServingError(.invalidArgument, "input '\(name)': UINT8 value out of range") }
            data = .uint8(c.uintContents.map { UInt8($0) }); used = c.uintContents.count
        case .bool: data = .bool(c.boolContents); used = c.boolContents.count
        case .bytes: data = .bytes(c.bytesContents); used = c.bytesContents.count
        }
        guard used == c.count else {
            throw ServingError(.invalidArgument, "input '\(name)': \(dt.rawValue) values must be in the \(field(dt)) field of contents only")
        }
        guard used == n else {
            throw ServingError(.invalidArgument, "input '\(name)': shape \(dims) needs \(n) values, got \(used)")
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

    static func contents(_ t: Tensor) -> InferTensorContents {
        var c = InferTensorContents()
        switch t.data {
        case .fp32(let v): c.fp32Contents = v
        case .fp64(let v): c.fp64Contents = v
        case .int64(let v): c.int64Contents = v
        case .int32(let v): c.intContents = v
        case .int16(let v): c.intContents = v.map(Int32.init)
        case .int8(let v): c.intContents = v.map(Int32.init)
        case .uint8(let v): c.uintContents = v.map(UInt32.init)
        case .bool(let v): c.boolContents = v
        case .bytes(let v): c.bytesContents = v
        }
        return c
    }
}
