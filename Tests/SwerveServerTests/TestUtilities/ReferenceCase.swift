import Foundation
import SwerveTesting

/// One fixture from Tests/SwerveInferenceTests/Fixtures: an ONNX model, inputs, and the outputs
/// onnxruntime computed for them (written by scripts/make_test_onnx.py).
struct ReferenceCase {
    var inputs: [WireTensor]
    var outputs: [WireTensor]

    init(_ fixture: String) throws {
        let url = PackagePaths.inferenceFixtures.appendingPathComponent("\(fixture).json")
        guard let record = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any],
            let inputs = record["inputs"] as? [[String: Any]], let outputs = record["outputs"] as? [[String: Any]]
        else { throw WireError("\(url.path): not a fixture record") }
        self.inputs = try inputs.map(Self.tensor)
        self.outputs = try outputs.map(Self.tensor)
    }

    private static func tensor(_ json: [String: Any]) throws -> WireTensor {
        guard let name = json["name"] as? String, let dtype = json["dtype"] as? String, let shape = json["shape"] as? [Int],
            let data = json["data"] as? [Any]
        else { throw WireError("malformed fixture tensor \(json.keys.sorted())") }
        let values: WireTensor.Values
        switch dtype {
        case "FP32": values = .fp32(data.map { Float(number($0)) })
        case "FP64": values = .fp64(data.map(number))
        case "INT64": values = .int64(data.map { ($0 as! NSNumber).int64Value })
        case "INT32": values = .int32(data.map { ($0 as! NSNumber).int32Value })
        case "BOOL": values = .bool(data.map { ($0 as! NSNumber).boolValue })
        case "BYTES": values = .bytes(data.map { Array(($0 as! String).utf8) })
        default: throw WireError("fixture dtype \(dtype)")
        }
        return WireTensor(name: name, datatype: dtype, shape: shape.map(Int64.init), values: values)
    }

    /// A JSON number, or the strings "NaN", "Infinity" and "-Infinity" the fixture script writes.
    private static func number(_ value: Any) -> Double {
        if let text = value as? String, text == "NaN" { return .nan }
        if let text = value as? String, text == "Infinity" { return .infinity }
        if let text = value as? String, text == "-Infinity" { return -.infinity }
        return (value as! NSNumber).doubleValue
    }
}

/// Why `got` differs from `want` (names, datatypes, shapes exactly; floating point within
/// onnxruntime's tolerance: |a − b| ≤ max(1e-5·|b|, 1e-6), NaN equal to NaN), or nil when it does not.
func mismatch(_ got: WireTensor, _ want: WireTensor) -> String? {
    guard got.name == want.name, got.datatype == want.datatype, got.shape == want.shape else {
        return "got \(got), want \(want)"
    }
    func close<F: BinaryFloatingPoint>(_ a: [F], _ b: [F]) -> String? {
        guard a.count == b.count else { return "\(got.name): \(a.count) values, want \(b.count)" }
        for (i, (x, y)) in zip(a, b).enumerated() where !(x.isNaN && y.isNaN) && x != y {
            if !(abs(x - y) <= max(F(1e-5) * abs(y), F(1e-6))) { return "\(got.name)[\(i)]: \(x), want \(y)" }
        }
        return nil
    }
    switch (got.values, want.values) {
    case (.fp32(let a), .fp32(let b)): return close(a, b)
    case (.fp64(let a), .fp64(let b)): return close(a, b)
    default: return got.values == want.values ? nil : "\(got.name): values differ"
    }
}
