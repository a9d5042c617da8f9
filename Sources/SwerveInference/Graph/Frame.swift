// The executor's per-run view of every graph value: a data pointer and a resolved shape.

/// One compiled operator application. Kernels know the value ids they read and write and get
/// pointers and shapes from the frame; they never allocate except for BYTES outputs.
protocol Kernel: Sendable {
    func execute(_ frame: Frame) throws
}

/// Where a value's data lives during a run.
enum Storage: Sendable {
    /// Index into `Plan.constants`.
    case constant(Int)
    /// A reusable buffer slot of the executor.
    case slot(Int)
    /// Not needed at run time (folded away or unused).
    case none
}

/// Everything the executor needs, produced by the compiler.
struct Plan: Sendable {
    var types: [ValueType]
    var names: [String]
    var storage: [Storage]
    var constants: [ConstantBuffer]
    var steps: [any Kernel]
    var inputValues: [Int]
    var outputValues: [Int]
    var slotCount: Int
}

/// A constant's bytes, immutable after creation and shared by every executor of a model.
final class ConstantBuffer: @unchecked Sendable {
    let tensor: Tensor
    let bytes: UnsafeMutableRawPointer?

    init(_ tensor: Tensor) {
        self.tensor = tensor
        if tensor.dataType == .bytes {
            bytes = nil
        } else {
            let n = tensor.data.rawByteCount
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 16)
            tensor.data.writeRaw(to: UnsafeMutableRawBufferPointer(start: p, count: n))
            bytes = p
        }
    }

    deinit { bytes?.deallocate() }

    var strings: [[UInt8]] {
        if case .bytes(let v) = tensor.data { v } else { [] }
    }
}

/// Per-run state: resolved shapes and data pointers for every value. Owned by one executor.
final class Frame {
    let plan: Plan
    private(set) var batch = -1
    /// Flat resolved shapes: value v's dims are `dims[shapeStart[v] ..< shapeStart[v] + rank[v]]`.
    private var dims: [Int]
    private let shapeStart: [Int]
    private var counts: [Int]
    private var pointers: [UnsafeMutableRawPointer?]
    private var slotBuffers: [UnsafeMutableRawPointer?]
    private var slotCapacity: [Int]
    private var slotNeed: [Int]
    private var stringValues: [[[UInt8]]]
    /// The shape `tensor(_:rows:)` last handed out for each value: asked for the same again (every
    /// one-row request), it hands out the same array, not a new one per output per request.
    private var lastShapes: [[Int]]

    init(plan: Plan) {
        self.plan = plan
        var start: [Int] = []
        var total = 0
        for t in plan.types {
            start.append(total)
            total += t.shape.count
        }
        shapeStart = start
        dims = Array(repeating: 0, count: total)
        counts = Array(repeating: 0, count: plan.types.count)
        pointers = Array(repeating: nil, count: plan.types.count)
        slotBuffers = Array(repeating: nil, count: plan.slotCount)
        slotCapacity = Array(repeating: 0, count: plan.slotCount)
        slotNeed = Array(repeating: 0, count: plan.slotCount)
        stringValues = Array(repeating: [], count: plan.types.count)
        lastShapes = Array(repeating: [], count: plan.types.count)
        for (v, s) in plan.storage.enumerated() {
            if case .constant(let c) = s {
                pointers[v] = plan.constants[c].bytes
                stringValues[v] = plan.constants[c].strings
            }
        }
    }

    deinit { for b in slotBuffers { b?.deallocate() } }

    /// Resolves every shape for batch size `n` and makes every slot big enough.
    func prepare(batch n: Int) {
        if n == batch { return }
        batch = n
        for i in slotNeed.indices { slotNeed[i] = 0 }
        for (v, t) in plan.types.enumerated() {
            var count = 1
            for (i, d) in t.shape.enumerated() {
                let r = d.resolve(n)
                dims[shapeStart[v] + i] = r
                count *= r
            }
            counts[v] = count
            if case .slot(let s) = plan.storage[v] {
                slotNeed[s] = max(slotNeed[s], count * (t.dataType.byteSize ?? 0))
            }
        }
        for s in 0..<plan.slotCount where slotNeed[s] > slotCapacity[s] {
            slotBuffers[s]?.deallocate()
            // Grow with headroom so a slowly rising batch size does not reallocate every run.
            let capacity = max(slotNeed[s], slotCapacity[s] * 3 / 2, 64)
            slotBuffers[s] = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
            slotCapacity[s] = capacity
        }
        for (v, s) in plan.storage.enumerated() {
            if case .slot(let slot) = s { pointers[v] = slotBuffers[slot] }
        }
    }

    // MARK: Kernel accessors

    @inline(__always) func rank(_ v: Int) -> Int { plan.types[v].shape.count }
    @inline(__always) func dim(_ v: Int, _ i: Int) -> Int { dims[shapeStart[v] + i] }
    @inline(__always) func count(_ v: Int) -> Int { counts[v] }
    @inline(__always) func dataType(_ v: Int) -> DataType { plan.types[v].dataType }

    /// Product of dims `range` of value `v`.
    func size(_ v: Int, _ range: Range<Int>) -> Int {
        var p = 1
        for i in range { p *= dims[shapeStart[v] + i] }
        return p
    }

    func shape(_ v: Int) -> [Int] { Array(dims[shapeStart[v]..<(shapeStart[v] + rank(v))]) }

    @inline(__always) func raw(_ v: Int) -> UnsafeMutableRawPointer {
        // Zero-sized values may have no buffer; hand out a harmless non-null pointer.
        pointers[v] ?? UnsafeMutableRawPointer(bitPattern: 64)!
    }

    @inline(__always) func pointer<T>(_ v: Int, _: T.Type) -> UnsafeMutablePointer<T> {
        raw(v).assumingMemoryBound(to: T.self)
    }

    func strings(_ v: Int) -> [[UInt8]] { stringValues[v] }
    func setStrings(_ v: Int, _ values: [[UInt8]]) { stringValues[v] = values }

    // MARK: Moving tensors in and out

    func load(_ v: Int, from tensor: Tensor) { load(v, fromRowsOf: CollectionOfOne(tensor)) }

    /// `load` of several tensors whose rows follow one another in `v` (a batch of requests).
    func load<Parts: Sequence<Tensor>>(_ v: Int, fromRowsOf parts: Parts) {
        var offset = 0
        var strings: [[UInt8]]?
        for tensor in parts {
            if case .bytes(let x) = tensor.data {
                strings = strings ?? []
                strings!.append(contentsOf: x)
                continue
            }
            tensor.data.withUnsafeElementBytes { src in
                if let base = src.baseAddress { (raw(v) + offset).copyMemory(from: base, byteCount: src.count) }
                offset += src.count
            }
        }
        if let strings { stringValues[v] = strings }
    }

    func tensor(_ v: Int) -> Tensor {
        rank(v) == 0 ? tensor(v, elements: 0..<count(v), shape: []) : tensor(v, rows: 0..<dim(v, 0))
    }

    /// Rows `rows` of value `v` (its first dimension) as a tensor of their own.
    func tensor(_ v: Int, rows: Range<Int>) -> Tensor {
        let r = rank(v)
        var width = 1
        for i in 1..<max(r, 1) { width *= dim(v, i) }
        // Built by appending, not `init(unsafeUninitializedCapacity:)`: that initializer calls
        // the standard library's unspecialized allocation, a type-metadata lookup per array
        // (~1% of a one-row request's CPU when it ran twice per output per request).
        return tensor(v, elements: (rows.lowerBound * width)..<(rows.upperBound * width), shape: shape(v, rows: rows.count, rank: max(r, 1)))
    }

    /// `[rows, dim 1, …]` of value `v`: the last one made for `v` when it is the same.
    private func shape(_ v: Int, rows: Int, rank r: Int) -> [Int] {
        let last = lastShapes[v]
        if last.count == r, last[0] == rows {
            var same = true
            for i in 1..<r where last[i] != dim(v, i) { same = false; break }
            if same { return last }
        }
        var shape: [Int] = []
        shape.reserveCapacity(r)
        shape.append(rows)
        for i in 1..<r { shape.append(dim(v, i)) }
        lastShapes[v] = shape
        return shape
    }

    private func tensor(_ v: Int, elements: Range<Int>, shape: [Int]) -> Tensor {
        let n = elements.count
        // A copy of a buffer: specialized here, no type-metadata lookup (see `tensor(_:rows:)`).
        @inline(__always) func read<T>(_: T.Type) -> [T] {
            n > 0 ? Array(UnsafeBufferPointer(start: pointer(v, T.self) + elements.lowerBound, count: n)) : []
        }
        let data: TensorData
        switch dataType(v) {
        case .fp32: data = .fp32(read(Float.self))
        case .fp64: data = .fp64(read(Double.self))
        case .int64: data = .int64(read(Int64.self))
        case .int32: data = .int32(read(Int32.self))
        case .int16: data = .int16(read(Int16.self))
        case .int8: data = .int8(read(Int8.self))
        case .uint8: data = .uint8(read(UInt8.self))
        case .bool: data = .bool(read(Bool.self))
        case .bytes:
            let all = stringValues[v]
            data = .bytes(elements == 0..<all.count ? all : Array(all[elements]))
        }
        return Tensor(shape: shape, data: data)
    }

    /// Copies value `src` into `dst` (same element count and type); used by reshaping operators.
    func copyValue(_ src: Int, to dst: Int) {
        if dataType(src) == .bytes {
            stringValues[dst] = stringValues[src]
        } else {
            let bytes = count(src) * (dataType(src).byteSize ?? 0)
            if bytes > 0 { raw(dst).copyMemory(from: raw(src), byteCount: bytes) }
        }
    }
}
