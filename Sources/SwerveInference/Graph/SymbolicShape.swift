// Shapes known at compile time up to the batch size N. Every dimension is either a constant or
// a constant multiple of N, so the executor resolves all shapes for a batch with arithmetic
// only, and kernels never allocate shape arrays.

/// A dimension: `fixed(k)` or `batch(k)` = k·N.
enum SymDim: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case batch(Int)

    func resolve(_ n: Int) -> Int {
        switch self {
        case .fixed(let k): k
        case .batch(let k): k * n
        }
    }

    var fixedValue: Int? { if case .fixed(let k) = self { k } else { nil } }
    var isBatch: Bool { if case .batch = self { true } else { false } }

    var description: String {
        switch self {
        case .fixed(let k): "\(k)"
        case .batch(1): "N"
        case .batch(let k): "\(k)N"
        }
    }
}

/// A product of dimensions: `coefficient · N^power`.
struct SymSize: Hashable {
    var coefficient: Int
    var power: Int

    static let one = SymSize(coefficient: 1, power: 0)

    init(coefficient: Int, power: Int) {
        self.coefficient = coefficient
        self.power = power
    }

    init(_ dim: SymDim) {
        switch dim {
        case .fixed(let k): self.init(coefficient: k, power: 0)
        case .batch(let k): self.init(coefficient: k, power: 1)
        }
    }

    /// Saturates at `Int.max` instead of trapping: a model's shapes are not to be trusted, and a
    /// product that large is refused by the compiler's element bound anyway.
    static func * (a: SymSize, b: SymSize) -> SymSize {
        let (c, overflow) = a.coefficient.multipliedReportingOverflow(by: b.coefficient)
        return SymSize(coefficient: overflow ? .max : c, power: a.power + b.power)
    }

    /// As a single dimension, when it is one (N² is not).
    var dim: SymDim? {
        switch power {
        case 0: .fixed(coefficient)
        case 1: .batch(coefficient)
        default: nil
        }
    }
}

typealias SymShape = [SymDim]

extension Array where Element == SymDim {
    func product(_ range: Range<Int>? = nil) -> SymSize {
        var p = SymSize.one
        for d in self[range ?? indices] { p = p * SymSize(d) }
        return p
    }

    var isStatic: Bool { allSatisfy { !$0.isBatch } }

    /// As TensorInfo shows it: -1 for batch dimensions.
    var publicShape: [Int] { map { $0.fixedValue ?? -1 } }

    var text: String { "[" + map(\.description).joined(separator: ", ") + "]" }
}

/// Element type and symbolic shape of a graph value.
struct ValueType: Hashable, Sendable {
    var dataType: DataType
    var shape: SymShape
}

/// The numpy-style broadcast of several shapes, or nil when they do not broadcast.
/// A batch dimension broadcasts with 1 and with an identical batch dimension only.
func broadcastShapes(_ shapes: [SymShape]) -> SymShape? {
    let rank = shapes.map(\.count).max() ?? 0
    var out = SymShape(repeating: .fixed(1), count: rank)
    for s in shapes {
        let offset = rank - s.count
        for (i, d) in s.enumerated() {
            let current = out[offset + i]
            if current == d || d == .fixed(1) { continue }
            if current == .fixed(1) { out[offset + i] = d; continue }
            return nil
        }
    }
    return out
}
