import SwerveInference

/// The finite input domain of a model whose every input element is categorical: which inputs the
/// model has, and for every element of an input's row, the list of values it may take.
///
/// Two common layouts are covered by the same description:
/// - several inputs of shape `[batch, 1]` (or `[batch]`), one feature each: one column per input;
/// - one input of shape `[batch, k]` holding k categorical features: k columns on that input,
///   elements 0..<k.
///
/// Rows are numbered in mixed radix, the first column most significant: a row whose column `c`
/// holds the `d_c`-th allowed value has index `sum(d_c * stride_c)`, where `stride_c` is the product
/// of the later columns' cardinalities. Enumeration goes in that index order.
public struct StaticDomain: Sendable, Equatable {
    /// One model input as the table reads and builds it.
    public struct Input: Sendable, Equatable {
        public var name: String
        public var dataType: DataType
        /// Dimensions of one row, without the batch dimension: `[]` for `[batch]`, `[1]` for
        /// `[batch, 1]`, `[k]` for `[batch, k]`.
        public var rowShape: [Int]

        public init(name: String, dataType: DataType, rowShape: [Int]) {
            self.name = name
            self.dataType = dataType
            self.rowShape = rowShape
        }

        /// Elements in one row.
        public var rowWidth: Int { rowShape.reduce(1, *) }
    }

    /// One categorical feature: an element of one input's row and its allowed values.
    public struct Column: Sendable, Equatable {
        /// Position of the input in `inputs`.
        public var input: Int
        /// Element within that input's row (row-major, 0..<rowWidth).
        public var element: Int
        /// The allowed values, of the input's type, all different (floats compare by bit pattern).
        public var values: TensorData

        public init(input: Int, element: Int, values: TensorData) {
            self.input = input
            self.element = element
            self.values = values
        }
    }

    /// The model's inputs, in the model's input order.
    public let inputs: [Input]
    /// Every element of every input row, exactly once, most significant first.
    public let columns: [Column]
    /// Whether inputs have a leading batch dimension. Without one, an execution is a single row of
    /// shape `rowShape`.
    public let batched: Bool
    /// Values per column.
    public let cardinalities: [Int]
    /// Mixed-radix weight of each column.
    public let strides: [Int]
    /// Rows in the domain (the product of the cardinalities).
    public let cellCount: Int
    /// For each input, for each element of its row, the column that covers it.
    private let elementColumns: [[Int]]
    private let lookups: [ValueLookup]

    /// A domain; throws `failedPrecondition` when the columns do not cover every input element
    /// exactly once, a value list is empty, has duplicates or the wrong type, or the row count
    /// overflows `Int`.
    public init(inputs: [Input], columns: [Column], batched: Bool = true) throws {
        guard !inputs.isEmpty else { throw ServingError(.failedPrecondition, "a static domain needs at least one input") }
        var covered = inputs.map { [Int?](repeating: nil, count: $0.rowWidth) }
        for (c, col) in columns.enumerated() {
            guard inputs.indices.contains(col.input) else {
                throw ServingError(.failedPrecondition, "static domain column \(c) names input #\(col.input); there are \(inputs.count) inputs")
            }
            let input = inputs[col.input]
            guard (0..<input.rowWidth).contains(col.element) else {
                throw ServingError(.failedPrecondition, "static domain column \(c): input '\(input.name)' has \(input.rowWidth) elements per row, not element \(col.element)")
            }
            guard covered[col.input][col.element] == nil else {
                throw ServingError(.failedPrecondition, "static domain: element \(col.element) of input '\(input.name)' is covered by two columns")
            }
            guard col.values.dataType == input.dataType else {
                throw ServingError(.failedPrecondition, "static domain column \(c): input '\(input.name)' is \(input.dataType.rawValue) but its values are \(col.values.dataType.rawValue)")
            }
            guard col.values.count > 0 else {
                throw ServingError(.failedPrecondition, "static domain column \(c) (input '\(input.name)', element \(col.element)) has no values")
            }
            covered[col.input][col.element] = c
        }
        for (i, input) in inputs.enumerated() {
            if let e = covered[i].firstIndex(where: { $0 == nil }) {
                throw ServingError(.failedPrecondition, "static domain: element \(e) of input '\(input.name)' has no value list, so the input domain is not finite")
            }
        }
        var lookups: [ValueLookup] = []
        for (c, col) in columns.enumerated() {
            guard let l = ValueLookup(col.values) else {
                throw ServingError(.failedPrecondition, "static domain column \(c) (input '\(inputs[col.input].name)', element \(col.element)) lists a value twice")
            }
            lookups.append(l)
        }
        let cards = columns.map(\.values.count)
        var strides = [Int](repeating: 1, count: cards.count)
        var total = 1
        for c in stride(from: cards.count - 1, through: 0, by: -1) {
            strides[c] = total
            let (p, overflow) = total.multipliedReportingOverflow(by: cards[c])
            guard !overflow else { throw ServingError(.failedPrecondition, "static domain: the number of input combinations overflows") }
            total = p
        }
        self.inputs = inputs
        self.columns = columns
        self.batched = batched
        self.cardinalities = cards
        self.strides = strides
        self.cellCount = total
        self.elementColumns = covered.map { $0.map { $0! } }
        self.lookups = lookups
    }

    /// Several inputs, each one categorical feature per row (shape `[batch, 1]` by default).
    public static func oneFeaturePerInput(_ features: [(name: String, values: TensorData)], rowShape: [Int] = [1],
                                          batched: Bool = true) throws -> StaticDomain {
        try StaticDomain(
            inputs: features.map { Input(name: $0.name, dataType: $0.values.dataType, rowShape: rowShape) },
            columns: features.indices.map { Column(input: $0, element: 0, values: features[$0].values) },
            batched: batched)
    }

    /// One input of shape `[batch, k]` whose k elements are categorical features, each with its own values.
    public static func oneInput(name: String, dataType: DataType, features: [TensorData], batched: Bool = true) throws -> StaticDomain {
        try StaticDomain(
            inputs: [Input(name: name, dataType: dataType, rowShape: [features.count])],
            columns: features.indices.map { Column(input: 0, element: $0, values: features[$0]) },
            batched: batched)
    }

    public static func == (a: StaticDomain, b: StaticDomain) -> Bool {
        a.inputs == b.inputs && a.columns == b.columns && a.batched == b.batched
    }

    // MARK: Index

    /// The index of row `row` of a request's inputs (in model input order), or nil when a value is
    /// outside its column's domain or the tensors do not have the domain's types and widths (the
    /// caller then computes the request instead).
    public func index(of tensors: [Tensor], row: Int) -> Int? {
        guard tensors.count == inputs.count else { return nil }
        var index = 0
        for (c, col) in columns.enumerated() {
            let t = tensors[col.input]
            let width = inputs[col.input].rowWidth
            let at = row * width + col.element
            guard t.dataType == inputs[col.input].dataType, row >= 0, at < t.data.count,
                  let digit = lookups[c].position(in: t.data, at: at) else { return nil }
            index += digit * strides[c]
        }
        return index
    }

    /// The indices of every row of a request, or nil when any row is outside the domain.
    public func indices(of tensors: [Tensor]) -> [Int]? {
        guard tensors.count == inputs.count, let first = tensors.first else { return nil }
        let rows: Int
        if batched {
            guard let r = first.shape.first else { return nil }
            rows = r
        } else {
            rows = 1
        }
        for (t, input) in zip(tensors, inputs) where t.elementCount != rows * input.rowWidth { return nil }
        var out: [Int] = []
        out.reserveCapacity(rows)
        for r in 0..<rows {
            guard let i = index(of: tensors, row: r) else { return nil }
            out.append(i)
        }
        return out
    }

    /// The value position of each column in row `index`.
    public func digits(of index: Int) -> [Int] {
        precondition(index >= 0 && index < cellCount, "row \(index) outside 0..<\(cellCount)")
        return columns.indices.map { (index / strides[$0]) % cardinalities[$0] }
    }

    // MARK: Enumeration

    /// The input tensors of rows `range` (batched: shape `[range.count] + rowShape`; unbatched:
    /// `range` must hold one row, shape `rowShape`).
    public func inputs(forRows range: Range<Int>) -> [Tensor] {
        precondition(range.lowerBound >= 0 && range.upperBound <= cellCount, "rows \(range) outside 0..<\(cellCount)")
        precondition(batched || range.count == 1, "a model without a batch dimension takes one row at a time")
        return inputs.indices.map { i in
            let input = inputs[i]
            let cols = elementColumns[i]
            func fill<T>(_ extract: (TensorData) -> [T]) -> [T] {
                let valueLists = cols.map { extract(columns[$0].values) }
                var out: [T] = []
                out.reserveCapacity(range.count * cols.count)
                for row in range {
                    for (e, c) in cols.enumerated() {
                        out.append(valueLists[e][(row / strides[c]) % cardinalities[c]])
                    }
                }
                return out
            }
            let data: TensorData =
                switch input.dataType {
                case .fp32: .fp32(fill { if case .fp32(let v) = $0 { v } else { [] } })
                case .fp64: .fp64(fill { if case .fp64(let v) = $0 { v } else { [] } })
                case .int64: .int64(fill { if case .int64(let v) = $0 { v } else { [] } })
                case .int32: .int32(fill { if case .int32(let v) = $0 { v } else { [] } })
                case .int16: .int16(fill { if case .int16(let v) = $0 { v } else { [] } })
                case .int8: .int8(fill { if case .int8(let v) = $0 { v } else { [] } })
                case .uint8: .uint8(fill { if case .uint8(let v) = $0 { v } else { [] } })
                case .bool: .bool(fill { if case .bool(let v) = $0 { v } else { [] } })
                case .bytes: .bytes(fill { if case .bytes(let v) = $0 { v } else { [] } })
                }
            return Tensor(shape: batched ? [range.count] + input.rowShape : input.rowShape, data: data)
        }
    }

    /// Every row of the domain in index order, as batches of at most `maxRows` rows (one row per
    /// batch for a model without a batch dimension).
    public func batches(maxRows: Int) -> Batches { Batches(domain: self, maxRows: batched ? max(1, maxRows) : 1) }

    /// The batches of a domain, each with the index of its first row.
    public struct Batches: Sequence, Sendable {
        let domain: StaticDomain
        let maxRows: Int

        public struct Iterator: IteratorProtocol {
            let domain: StaticDomain
            let maxRows: Int
            var position = 0

            public mutating func next() -> (start: Int, inputs: [Tensor])? {
                guard position < domain.cellCount else { return nil }
                let start = position
                let end = Swift.min(domain.cellCount, start + maxRows)
                position = end
                return (start, domain.inputs(forRows: start..<end))
            }
        }

        public func makeIterator() -> Iterator { Iterator(domain: domain, maxRows: maxRows) }
        public var underestimatedCount: Int { (domain.cellCount + maxRows - 1) / maxRows }
    }
}

/// Maps a column's allowed values to their positions.
private enum ValueLookup: Sendable {
    /// Integers, BOOL (0/1) and floats (by bit pattern, so 0.0 and -0.0 differ, as the model may).
    case scalar([UInt64: Int])
    case bytes([[UInt8]: Int])

    init?(_ values: TensorData) {
        func build<K: Hashable>(_ keys: [K]) -> [K: Int]? {
            var d: [K: Int] = [:]
            d.reserveCapacity(keys.count)
            for (i, k) in keys.enumerated() {
                guard d.updateValue(i, forKey: k) == nil else { return nil }
            }
            return d
        }
        let scalars: [UInt64]
        switch values {
        case .bytes(let v):
            guard let d = build(v) else { return nil }
            self = .bytes(d)
            return
        case .fp32(let v): scalars = v.map { UInt64($0.bitPattern) }
        case .fp64(let v): scalars = v.map { $0.bitPattern }
        case .int64(let v): scalars = v.map { UInt64(bitPattern: $0) }
        case .int32(let v): scalars = v.map { UInt64(bitPattern: Int64($0)) }
        case .int16(let v): scalars = v.map { UInt64(bitPattern: Int64($0)) }
        case .int8(let v): scalars = v.map { UInt64(bitPattern: Int64($0)) }
        case .uint8(let v): scalars = v.map { UInt64($0) }
        case .uint16(let v): scalars = v.map { UInt64($0) }
        case .uint32(let v): scalars = v.map { UInt64($0) }
        case .uint64(let v): scalars = v
        case .bool(let v): scalars = v.map { $0 ? 1 : 0 }
        }
        guard let d = build(scalars) else { return nil }
        self = .scalar(d)
    }

    /// The position of element `at` of `data` among the allowed values (types already checked).
    @inline(__always)
    func position(in data: TensorData, at i: Int) -> Int? {
        switch self {
        case .bytes(let d):
            guard case .bytes(let v) = data else { return nil }
            return d[v[i]]
        case .scalar(let d):
            let key: UInt64
            switch data {
            case .fp32(let v): key = UInt64(v[i].bitPattern)
            case .fp64(let v): key = v[i].bitPattern
            case .int64(let v): key = UInt64(bitPattern: v[i])
            case .int32(let v): key = UInt64(bitPattern: Int64(v[i]))
            case .int16(let v): key = UInt64(bitPattern: Int64(v[i]))
            case .int8(let v): key = UInt64(bitPattern: Int64(v[i]))
            case .uint8(let v): key = UInt64(v[i])
            case .uint16(let v): key = UInt64(v[i])
            case .uint32(let v): key = UInt64(v[i])
            case .uint64(let v): key = v[i]
            case .bool(let v): key = v[i] ? 1 : 0
            case .bytes: return nil
            }
            return d[key]
        }
    }
}

/// Every answer of a model over a finite input domain, precomputed through the batched core at load
/// time and stored densely per output, so that a request is served by table index.
public struct StaticTable: Sendable {
    /// Bounds checked before a table is built.
    public struct Limits: Sendable, Equatable {
        /// Most rows (input combinations).
        public var maxCells: Int = 1 << 20
        /// Most bytes of stored outputs.
        public var maxBytes: Int = 256 << 20
        /// Assumed bytes per element of a BYTES output, whose size is unknown before the build.
        public var assumedBytesPerStringElement: Int = 32

        public init(maxCells: Int = 1 << 20, maxBytes: Int = 256 << 20, assumedBytesPerStringElement: Int = 32) {
            self.maxCells = maxCells
            self.maxBytes = maxBytes
            self.assumedBytesPerStringElement = assumedBytesPerStringElement
        }
    }

    /// What a table would cost, and whether that is within the limits.
    public struct Estimate: Sendable, Equatable {
        public var cells: Int
        /// Bytes of stored outputs (nil when an output has a dynamic non-batch dimension).
        public var bytes: Int?
        /// Why the table should not be built; nil when it fits.
        public var refusal: String?
        public var fits: Bool { refusal == nil }
    }

    /// One output, stored for every row.
    public struct Output: Sendable, Equatable {
        public var name: String
        /// Dimensions of one row's value, without the batch dimension.
        public var rowShape: [Int]
        /// All rows' values, row-major: row `i` is elements `i * rowWidth ..< (i + 1) * rowWidth`.
        public var data: TensorData
        public var rowWidth: Int { rowShape.reduce(1, *) }
    }

    public let domain: StaticDomain
    /// The outputs, in the order given at build time (the model's output order).
    public let outputs: [Output]

    /// What a table of `domain` with `outputs` (the model's output infos; a leading -1 is the batch
    /// dimension) would cost, checked against `limits`. Call before building.
    public static func estimate(domain: StaticDomain, outputs: [TensorInfo], limits: Limits = Limits()) -> Estimate {
        let cells = domain.cellCount
        var perRow = 0
        var unknown: String? = nil
        for o in outputs {
            let dims = domain.batched ? Array(o.shape.dropFirst()) : o.shape
            if dims.contains(where: { $0 < 0 }) { unknown = o.name; break }
            let width = dims.reduce(1, *)
            perRow += width * (o.dataType.byteSize ?? limits.assumedBytesPerStringElement)
        }
        var e = Estimate(cells: cells, bytes: nil, refusal: nil)
        if cells > limits.maxCells {
            e.refusal = "the input domain has \(cells) combinations, over the limit of \(limits.maxCells)"
        }
        if let u = unknown {
            e.refusal = e.refusal ?? "output '\(u)' has a dynamic dimension besides the batch, so its size is unknown before the build"
            return e
        }
        let (bytes, overflow) = cells.multipliedReportingOverflow(by: perRow)
        if overflow {
            e.refusal = e.refusal ?? "the table's size overflows"
            return e
        }
        e.bytes = bytes
        if bytes > limits.maxBytes {
            e.refusal = e.refusal ?? "the table would take \(bytes) bytes, over the limit of \(limits.maxBytes)"
        }
        return e
    }

    /// Builds the table synchronously: checks `limits` on the row count first, then runs every batch of
    /// at most `maxRows` rows through `run` (inputs in model order → outputs in `outputNames` order),
    /// calling `progress(rowsDone, rowsTotal)` after each batch. Throws when a bound is exceeded, when
    /// `run` throws, or when an output's shape is not the same for every row.
    public static func build(domain: StaticDomain, outputNames: [String], maxRows: Int, limits: Limits = Limits(),
                             run: ([Tensor]) throws -> [Tensor],
                             progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> StaticTable {
        guard domain.cellCount <= limits.maxCells else {
            throw ServingError(.failedPrecondition, "static table: the input domain has \(domain.cellCount) combinations, over the limit of \(limits.maxCells)")
        }
        var builder = Builder(domain: domain, outputNames: outputNames, maxBytes: limits.maxBytes)
        for batch in domain.batches(maxRows: maxRows) {
            let outputs = try run(batch.inputs)
            try builder.store(start: batch.start, outputs: outputs)
            progress(builder.rowsStored, domain.cellCount)
        }
        return try builder.finish()
    }

    /// Collects batch results in any order (for builds driven by callbacks) and assembles the table.
    public struct Builder: Sendable {
        public let domain: StaticDomain
        public let outputNames: [String]
        public let maxBytes: Int
        private var chunks: [(start: Int, rows: Int, outputs: [Tensor])] = []
        private var rowShapes: [[Int]]? = nil
        private var bytes = 0
        /// Rows stored so far.
        public private(set) var rowsStored = 0

        public init(domain: StaticDomain, outputNames: [String], maxBytes: Int = Int.max) {
            self.domain = domain
            self.outputNames = outputNames
            self.maxBytes = maxBytes
        }

        /// Stores the outputs of the batch whose first row is `start` (as `StaticDomain.batches` gives it).
        public mutating func store(start: Int, outputs: [Tensor]) throws {
            guard outputs.count == outputNames.count else {
                throw ServingError(.internal, "static table: the model returned \(outputs.count) outputs, expected \(outputNames.count)")
            }
            var rows = 1
            var shapes: [[Int]] = []
            var normalized: [Tensor] = []
            for (k, t) in outputs.enumerated() {
                var t = t
                if domain.batched {
                    guard let r = t.shape.first else {
                        throw ServingError(.internal, "static table: output '\(outputNames[k])' is a scalar; a batched model's outputs need a batch dimension")
                    }
                    if k == 0 { rows = r } else if r != rows {
                        throw ServingError(.internal, "static table: outputs disagree on the row count (\(rows) vs \(r) for '\(outputNames[k])')")
                    }
                } else {
                    t = Tensor(shape: [1] + t.shape, data: t.data)
                }
                shapes.append(Array(t.shape.dropFirst()))
                normalized.append(t)
            }
            if let expected = rowShapes, expected != shapes {
                throw ServingError(.internal, "static table: output row shapes changed between batches (\(expected) vs \(shapes))")
            }
            guard start >= 0, start + rows <= domain.cellCount else {
                throw ServingError(.internal, "static table: batch rows \(start)..<\(start + rows) outside the domain of \(domain.cellCount)")
            }
            rowShapes = shapes
            bytes += normalized.reduce(0) { $0 + RequestKey.dataByteCount($1.data) }
            guard bytes <= maxBytes else {
                throw ServingError(.failedPrecondition, "static table: outputs passed the limit of \(maxBytes) bytes after \(rowsStored + rows) of \(domain.cellCount) rows")
            }
            chunks.append((start, rows, normalized))
            rowsStored += rows
        }

        /// The table; throws unless the stored batches cover every row exactly once.
        public func finish() throws -> StaticTable {
            let sorted = chunks.sorted { $0.start < $1.start }
            var next = 0
            for c in sorted {
                guard c.start == next else {
                    throw ServingError(.internal, "static table: rows \(next)..<\(c.start) are missing or stored twice")
                }
                next += c.rows
            }
            guard next == domain.cellCount, let shapes = rowShapes else {
                throw ServingError(.internal, "static table: \(next) of \(domain.cellCount) rows stored")
            }
            let outputs = outputNames.indices.map { k in
                let all = Tensor.concatenateRows(sorted.map { $0.outputs[k] })
                return Output(name: outputNames[k], rowShape: shapes[k], data: all.data)
            }
            return StaticTable(domain: domain, outputs: outputs)
        }
    }

    /// A table from already computed outputs (tests, or a table loaded from disk).
    public init(domain: StaticDomain, outputs: [Output]) {
        for o in outputs {
            precondition(o.data.count == domain.cellCount * o.rowWidth, "output '\(o.name)' holds \(o.data.count) elements, expected \(domain.cellCount) rows of \(o.rowWidth)")
        }
        self.domain = domain
        self.outputs = outputs
    }

    /// Bytes of stored outputs.
    public var byteCount: Int { outputs.reduce(0) { $0 + RequestKey.dataByteCount($1.data) } }

    /// The row index of row `row` of a request; nil when outside the domain. See `StaticDomain.index`.
    public func index(of tensors: [Tensor], row: Int) -> Int? { domain.index(of: tensors, row: row) }

    /// The outputs of row `index`: shape `[1] + rowShape` (just `rowShape` for an unbatched model).
    public func lookup(_ index: Int) -> [Tensor] { lookup(rows: [index]) }

    /// The outputs of several rows, in order: what the batched core returns for a request with those
    /// rows. Shape `[rows.count] + rowShape` (`rowShape` for an unbatched model, with one row).
    public func lookup(rows: [Int]) -> [Tensor] {
        for r in rows { precondition(r >= 0 && r < domain.cellCount, "row \(r) outside 0..<\(domain.cellCount)") }
        return outputs.map { o in
            let w = o.rowWidth
            let data = o.data.gathering(rows.lazy.map { ($0 * w)..<(($0 + 1) * w) })
            let shape = domain.batched ? [rows.count] + o.rowShape : o.rowShape
            return Tensor(shape: shape, data: data)
        }
    }

    /// Serves a whole request from the table: nil when any row is outside the domain.
    public func outputs(for tensors: [Tensor]) -> [Tensor]? {
        guard let rows = domain.indices(of: tensors) else { return nil }
        if !domain.batched && rows.count != 1 { return nil }
        return lookup(rows: rows)
    }
}
