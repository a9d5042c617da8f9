import ArgumentParser
import SwerveClient
import SwerveProto
import SwerveTransport

/// `swerve predict`: one ModelInfer call from nested JSON arrays on the command line.
struct PredictCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Send one ModelInfer request and print the outputs.",
        discussion: """
            Each --input is NAME=JSON, a number, string or boolean, or nested arrays of them; the \
            nesting gives the shape: --input 'x=[[0.1,0.2],[0.3,0.4]]' is FP32 (or whatever the model \
            declares) of shape [2, 2]. The exit code is the gRPC status code on error.
            """)

    @OptionGroup var connection: ClientConnectionOptions

    @Option(name: .long, help: "The model's name.")
    var model: String

    @Option(name: .long, help: "The model version; the server's choice when omitted.")
    var version: String = ""

    @Option(name: .long, help: ArgumentHelp("An input tensor, NAME=JSON (repeatable).", valueName: "name=json"))
    var input: [String] = []

    @Option(name: .long, help: ArgumentHelp("An input's datatype, NAME=TYPE (default: from ModelMetadata).", valueName: "name=type"))
    var datatype: [String] = []

    @Option(name: .long, help: ArgumentHelp("An output to return (repeatable; default: all).", valueName: "name"))
    var output: [String] = []

    @Flag(name: .long, help: "Send typed contents rather than raw_input_contents.")
    var typed = false

    func validate() throws {
        guard !input.isEmpty else { throw ValidationError("give at least one --input NAME=JSON") }
        for spec in input {
            let (name, json) = try splitAssignment(spec, option: "--input")
            do {
                _ = try NestedArray.parse(json)
            } catch let error as NestedArray.ParseError {
                throw ValidationError("--input \(name): \(error.message)")
            }
        }
        for spec in datatype { _ = try splitAssignment(spec, option: "--datatype") }
    }

    func run() async throws {
        var parsed: [(name: String, array: NestedArray)] = []
        for spec in input {
            let (name, json) = try splitAssignment(spec, option: "--input")
            do {
                parsed.append((name, try NestedArray.parse(json)))
            } catch let error as NestedArray.ParseError {
                throw ValidationError("--input \(name): \(error.message)")
            }
        }
        var datatypes: [String: String] = [:]
        for spec in datatype {
            let (name, type) = try splitAssignment(spec, option: "--datatype")
            datatypes[name] = type.uppercased()
        }
        try await connection.withClient { client in
            if parsed.contains(where: { datatypes[$0.name] == nil }) {
                let metadata = try await client.modelMetadata(name: model, version: version)
                for (name, _) in parsed where datatypes[name] == nil {
                    guard let declared = metadata.inputs.first(where: { $0.name == name }) else {
                        let known = metadata.inputs.map(\.name).joined(separator: ", ")
                        throw ValidationError("model '\(model)' has no input '\(name)' (inputs: \(known))")
                    }
                    datatypes[name] = declared.datatype
                }
            }
            var tensors: [String: ClientTensor] = [:]
            for (name, array) in parsed {
                do {
                    tensors[name] = try array.tensor(datatype: datatypes[name]!)
                } catch let error as NestedArray.ParseError {
                    throw ValidationError("--input \(name): \(error.message)")
                }
            }
            let result = try await client.infer(
                model: model, version: version, inputs: tensors, outputs: output.isEmpty ? nil : output, raw: !typed)
            let versionNote = result.modelVersion.isEmpty ? "" : " version \(result.modelVersion)"
            print("\(result.modelName)\(versionNote)")
            for name in result.outputNames {
                guard let tensor = result[name] else { continue }
                print("\(name)  \(tensor.datatype)  \(shapeText(tensor.shape))")
                print(formatNested(tensor))
            }
        }
    }
}

func splitAssignment(_ spec: String, option: String) throws -> (String, String) {
    guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
        throw ValidationError("\(option) must be NAME=VALUE, not '\(spec)'")
    }
    return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
}

// MARK: - Nested JSON arrays

/// A rectangular nest of JSON arrays: its shape and its leaves, row-major. Numbers keep
/// their text, so INT64 values beyond 2^53 survive.
struct NestedArray {
    enum Leaf {
        case number(String)
        case string(String)
        case bool(Bool)
    }

    struct ParseError: Error {
        var message: String
    }

    var shape: [Int]
    var leaves: [Leaf]

    static func parse(_ text: String) throws -> NestedArray {
        var parser = Parser(bytes: Array(text.utf8))
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == parser.bytes.count else { throw parser.error("unexpected text after the value") }
        var shape: [Int] = []
        var leaves: [Leaf] = []
        try flatten(value, depth: 0, shape: &shape, leaves: &leaves)
        return NestedArray(shape: shape, leaves: leaves)
    }

    private indirect enum Value {
        case leaf(Leaf)
        case array([Value])
    }

    /// Fixes each depth's length from the first array met there and requires the rest to agree.
    private static func flatten(_ value: Value, depth: Int, shape: inout [Int], leaves: inout [Leaf]) throws {
        switch value {
        case .leaf(let leaf):
            guard depth == shape.count else {
                throw ParseError(message: "ragged array: a value where an array of \(shape[depth]) was expected")
            }
            leaves.append(leaf)
        case .array(let elements):
            if depth == shape.count {
                guard leaves.isEmpty else { throw ParseError(message: "ragged array: arrays nested deeper in later elements") }
                shape.append(elements.count)
            } else if shape[depth] != elements.count {
                throw ParseError(message: "ragged array: an array of \(elements.count) where \(shape[depth]) was expected")
            }
            for element in elements { try flatten(element, depth: depth + 1, shape: &shape, leaves: &leaves) }
        }
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        func error(_ message: String) -> ParseError {
            ParseError(message: "\(message) at offset \(index)")
        }

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func value() throws -> Value {
            skipSpace()
            guard index < bytes.count else { throw error("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "["):
                index += 1
                var elements: [Value] = []
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(elements)
                }
                while true {
                    elements.append(try value())
                    skipSpace()
                    guard index < bytes.count else { throw error("unterminated array") }
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                    } else if bytes[index] == UInt8(ascii: "]") {
                        index += 1
                        return .array(elements)
                    } else {
                        throw error("expected ',' or ']'")
                    }
                }
            case UInt8(ascii: "\""):
                return .leaf(.string(try string()))
            default:
                let start = index
                while index < bytes.count, !", \t\r\n]".utf8.contains(bytes[index]) { index += 1 }
                let token = String(decoding: bytes[start..<index], as: UTF8.self)
                switch token {
                case "true": return .leaf(.bool(true))
                case "false": return .leaf(.bool(false))
                case "": throw error("expected a value")
                default:
                    guard Double(token) != nil || token.lowercased() == "nan" || token.lowercased().hasSuffix("inf") else {
                        throw ParseError(message: "'\(token)' is not a number")
                    }
                    return .leaf(.number(token))
                }
            }
        }

        mutating func string() throws -> String {
            index += 1
            var out: [UInt8] = []
            while index < bytes.count {
                let c = bytes[index]
                index += 1
                switch c {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw error("unterminated escape") }
                    let e = bytes[index]
                    index += 1
                    switch e {
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "u"):
                        guard index + 4 <= bytes.count,
                            let scalar = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16)
                                .flatMap(Unicode.Scalar.init)
                        else { throw error("bad \\u escape") }
                        index += 4
                        out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: out.append(e)
                    }
                default: out.append(c)
                }
            }
            throw error("unterminated string")
        }
    }

    /// The leaves converted to `datatype`.
    func tensor(datatype: String) throws -> ClientTensor {
        let shape = self.shape.map(Int64.init)
        func numbers<T>(_ convert: (String) -> T?) throws -> [T] {
            try leaves.map { leaf in
                switch leaf {
                case .number(let text):
                    guard let value = convert(text) else { throw ParseError(message: "'\(text)' is not a valid \(datatype)") }
                    return value
                case .bool(let b):
                    guard let value = convert(b ? "1" : "0") else { throw ParseError(message: "\(b) is not a valid \(datatype)") }
                    return value
                case .string(let s): throw ParseError(message: "\"\(s)\" is not a valid \(datatype)")
                }
            }
        }
        func integer<T: FixedWidthInteger>(_ text: String) -> T? {
            if let exact = T(text) { return exact }
            // 3.0 is accepted as 3; 3.5 is not.
            if let d = Double(text), d.rounded() == d, let v = T(exactly: d) { return v }
            return nil
        }
        switch datatype {
        case "FP32": return ClientTensor(shape: shape, fp32: try numbers { Float($0) })
        case "FP64": return ClientTensor(shape: shape, fp64: try numbers { Double($0) })
        case "INT64": return ClientTensor(shape: shape, int64: try numbers { integer($0) as Int64? })
        case "INT32": return ClientTensor(shape: shape, int32: try numbers { integer($0) as Int32? })
        case "INT16": return ClientTensor(shape: shape, values: .int16(try numbers { integer($0) as Int16? }))
        case "INT8": return ClientTensor(shape: shape, values: .int8(try numbers { integer($0) as Int8? }))
        case "UINT64": return ClientTensor(shape: shape, values: .uint64(try numbers { integer($0) as UInt64? }))
        case "UINT32": return ClientTensor(shape: shape, values: .uint32(try numbers { integer($0) as UInt32? }))
        case "UINT16": return ClientTensor(shape: shape, values: .uint16(try numbers { integer($0) as UInt16? }))
        case "UINT8": return ClientTensor(shape: shape, values: .uint8(try numbers { integer($0) as UInt8? }))
        case "BOOL":
            return ClientTensor(
                shape: shape,
                bool: try leaves.map { leaf in
                    switch leaf {
                    case .bool(let b): return b
                    case .number(let t) where Double(t) == 0 || Double(t) == 1: return Double(t) == 1
                    default: throw ParseError(message: "BOOL values must be true, false, 0 or 1")
                    }
                })
        case "BYTES":
            return ClientTensor(
                shape: shape,
                strings: leaves.map { leaf in
                    switch leaf {
                    case .string(let s): s
                    case .number(let t): t
                    case .bool(let b): b ? "true" : "false"
                    }
                })
        default:
            throw ParseError(message: "datatype \(datatype) cannot be given on the command line")
        }
    }
}

// MARK: - Printing

/// Each element as Swift prints it: true/false, integers in decimal, floats as `description`.
private struct ElementTexts: TensorValuesVisitor {
    func visit<Element: TensorElement>(_ elements: [Element]) -> [String] { elements.map { "\($0)" } }
}

/// A tensor's values as nested JSON-style arrays following its shape.
func formatNested(_ tensor: ClientTensor) -> String {
    let texts: [String]
    if case .bytes(let v) = tensor.values {
        texts = v.map { jsonQuoted(String(decoding: $0, as: UTF8.self)) }
    } else {
        texts = tensor.values.visit(ElementTexts())
    }
    let shape = tensor.shape.map { Int($0) }
    guard !shape.isEmpty else { return texts.first ?? "" }
    var out = ""
    var position = 0
    func emit(_ depth: Int) {
        out += "["
        for i in 0..<shape[depth] {
            if i > 0 { out += depth == shape.count - 1 ? ", " : ",\n" + String(repeating: " ", count: depth + 1) }
            if depth == shape.count - 1 {
                out += position < texts.count ? texts[position] : "?"
                position += 1
            } else {
                emit(depth + 1)
            }
        }
        out += "]"
    }
    emit(0)
    return out
}

func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if c.value < 0x20 {
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(c)
            }
        }
    }
    return out + "\""
}
