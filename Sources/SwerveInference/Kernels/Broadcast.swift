// Type-agnostic element movement and numpy-style broadcasting walks, for the operators that
// select, compare or look up elements of any type (Gather, Where, Equal, the encoders), including
// BYTES values, which live in the frame's per-value string arrays rather than in buffers.

/// Calls `body(o, a, b, c)` for every element `o` of `out`, in order, with the flat offsets of
/// the elements of `a`, `b` and `c` that numpy broadcasting pairs with it. Inputs must broadcast
/// to `out` (the compiler checked); pass the same id twice for a two-input operation.
@inline(__always)
func forEachBroadcast(_ frame: Frame, out: Int, _ a: Int, _ b: Int, _ c: Int, _ body: (Int, Int, Int, Int) -> Void) {
    let n = frame.count(out)
    if n == 0 { return }
    let na = frame.count(a), nb = frame.count(b), nc = frame.count(c)
    if (na == n || na == 1) && (nb == n || nb == 1) && (nc == n || nc == 1) {
        // Equal shapes or scalars: no index arithmetic.
        let sa = na == n ? 1 : 0, sb = nb == n ? 1 : 0, sc = nc == n ? 1 : 0
        for o in 0..<n { body(o, o * sa, o * sb, o * sc) }
        return
    }
    let rank = frame.rank(out)
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 5 * rank + 1) { scratch in
        let dims = scratch.baseAddress!, index = dims + rank
        let strides = [index + rank, index + 2 * rank, index + 3 * rank]
        for (k, v) in [a, b, c].enumerated() {
            let r = frame.rank(v)
            var step = 1
            for i in stride(from: rank - 1, through: 0, by: -1) {
                let vi = i - (rank - r)
                if vi >= 0 && frame.dim(v, vi) != 1 {
                    strides[k][i] = step
                    step *= frame.dim(v, vi)
                } else {
                    strides[k][i] = 0
                }
            }
        }
        for i in 0..<rank {
            dims[i] = frame.dim(out, i)
            index[i] = 0
        }
        let sa = strides[0], sb = strides[1], sc = strides[2]
        var offA = 0, offB = 0, offC = 0
        for o in 0..<n {
            body(o, offA, offB, offC)
            // Advance the output index odometer-style, moving each input's offset along.
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                offA += sa[d]
                offB += sb[d]
                offC += sc[d]
                if index[d] < dims[d] { break }
                offA -= sa[d] * dims[d]
                offB -= sb[d] * dims[d]
                offC -= sc[d] * dims[d]
                index[d] = 0
                d -= 1
            }
        }
    }
}

/// Element types a categorical kernel reads from and writes to a frame: the fixed-size types
/// through the value's buffer, BYTES (`[UInt8]`) through its string array.
protocol FrameElement: Hashable, Sendable {
    /// Calls `body` with a function that reads element `i` of value `v`.
    static func reading<R>(_ frame: Frame, _ v: Int, _ body: ((Int) -> Self) throws -> R) rethrows -> R
    /// Fills value `v` (of `count` elements) with `element(i)`.
    static func writing(_ frame: Frame, _ v: Int, count: Int, _ element: (Int) -> Self)
}

/// Fixed-size elements: read and written in place.
protocol BufferElement: FrameElement {}

extension BufferElement {
    @inline(__always)
    static func reading<R>(_ frame: Frame, _ v: Int, _ body: ((Int) -> Self) throws -> R) rethrows -> R {
        let p = frame.pointer(v, Self.self)
        return try body { p[$0] }
    }

    @inline(__always)
    static func writing(_ frame: Frame, _ v: Int, count: Int, _ element: (Int) -> Self) {
        let p = frame.pointer(v, Self.self)
        for i in 0..<count { p[i] = element(i) }
    }
}

extension Float: BufferElement {}
extension Double: BufferElement {}
extension Int64: BufferElement {}
extension Int32: BufferElement {}
extension Int16: BufferElement {}
extension Int8: BufferElement {}
extension UInt8: BufferElement {}
extension Bool: BufferElement {}

extension Array: FrameElement where Element == UInt8 {
    static func reading<R>(_ frame: Frame, _ v: Int, _ body: ((Int) -> [UInt8]) throws -> R) rethrows -> R {
        let values = frame.strings(v)
        return try body { values[$0] }
    }

    static func writing(_ frame: Frame, _ v: Int, count: Int, _ element: (Int) -> [UInt8]) {
        var result: [[UInt8]] = []
        result.reserveCapacity(count)
        for i in 0..<count { result.append(element(i)) }
        frame.setStrings(v, result)
    }
}

/// Runs `body` with the Swift type that holds elements of `type`. The element types are
/// grouped by size for operators that only move elements (bit patterns are preserved).
func withMovableType<R>(_ type: DataType, _ body: (any FrameElement.Type) -> R) -> R {
    switch type {
    case .bytes: body([UInt8].self)
    case .bool, .uint8, .int8: body(UInt8.self)
    case .int16: body(Int16.self)
    case .int32, .fp32: body(Int32.self)
    case .int64, .fp64: body(Int64.self)
    }
}
