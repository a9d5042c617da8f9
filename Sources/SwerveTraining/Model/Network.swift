#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SwerveInference

/// A hidden layer's nonlinearity.
public enum Activation: String, Sendable, Codable, CaseIterable {
    case relu, tanh
}

/// How the last layer's outputs become predictions, and the loss trained with it.
public enum OutputHead: String, Sendable, Codable {
    /// Regression: the output is the prediction; loss ½(ŷ − y)².
    case identity
    /// Binary classification: one logit, P(class 1) = σ(z); loss is log loss.
    case sigmoid
    /// Multiclass: one logit per class, softmax; loss is log loss.
    case softmax
}

/// A stack of dense layers: `layerSizes = [inputs, hidden…, outputs]`; hidden layers apply
/// `activation`, the last none (the head interprets it). Linear, logistic and softmax regression
/// are the networks with no hidden layer.
///
/// Parameters are one flat array: layer by layer, the weights `[outputs × inputs]` row-major, then
/// the biases `[outputs]`.
public struct Network: Sendable, Codable, Equatable {
    public var layerSizes: [Int]
    public var activation: Activation
    public var head: OutputHead
    public var parameters: [Double]

    public init(layerSizes: [Int], activation: Activation, head: OutputHead, parameters: [Double]? = nil) {
        self.layerSizes = layerSizes
        self.activation = activation
        self.head = head
        var count = 0
        for l in 0..<layerSizes.count - 1 { count += layerSizes[l + 1] * (layerSizes[l] + 1) }
        self.parameters = parameters ?? [Double](repeating: 0, count: count)
    }

    /// The number of dense layers.
    public var layerCount: Int { layerSizes.count - 1 }

    /// Where layer `l`'s weights start in `parameters`; its biases follow them.
    public func weightOffset(_ l: Int) -> Int {
        var offset = 0
        for k in 0..<l { offset += layerSizes[k + 1] * (layerSizes[k] + 1) }
        return offset
    }

    /// Layer `l`'s weights, `[outputs × inputs]` row-major.
    public func weights(_ l: Int) -> [Double] {
        let o = weightOffset(l)
        return Array(parameters[o..<o + layerSizes[l + 1] * layerSizes[l]])
    }

    /// Layer `l`'s biases.
    public func biases(_ l: Int) -> [Double] {
        let o = weightOffset(l) + layerSizes[l + 1] * layerSizes[l]
        return Array(parameters[o..<o + layerSizes[l + 1]])
    }

    /// 1 for every weight and 0 for every bias: L2 regularization applies to weights only.
    var weightMask: [Double] {
        var mask = [Double](repeating: 0, count: parameters.count)
        for l in 0..<layerCount {
            let o = weightOffset(l)
            for i in o..<o + layerSizes[l + 1] * layerSizes[l] { mask[i] = 1 }
        }
        return mask
    }

    /// Glorot-uniform weights and biases, U(±√(6 / (fan_in + fan_out))) as scikit-learn's MLP
    /// initializes them, from a SplitMix64 stream seeded with `seed`.
    mutating func initializeGlorot(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for l in 0..<layerCount {
            let fanIn = layerSizes[l], fanOut = layerSizes[l + 1]
            let bound = (6.0 / Double(fanIn + fanOut)).squareRoot()
            let o = weightOffset(l)
            for i in o..<o + fanOut * (fanIn + 1) { parameters[i] = (2 * rng.nextUnit() - 1) * bound }
        }
    }

    /// The raw outputs (before the head) for `rows` rows of `x` (row-major, `layerSizes[0]` wide),
    /// computed in chunks spread over `threads` threads.
    func outputs(_ x: [Double], rows: Int, threads: Int = 1) -> [Double] {
        let outWidth = layerSizes.last!
        var result = [Double](repeating: 0, count: rows * outWidth)
        let chunk = 256
        let chunks = (rows + chunk - 1) / chunk
        let workspaces = (0..<max(1, min(threads, chunks))).map { _ in Workspace(network: self, capacity: chunk) }
        x.withUnsafeBufferPointer { xp in
            result.withUnsafeMutableBufferPointer { rp in
                let xBase = SendablePointer(xp.baseAddress!), rBase = SendableMutablePointer(rp.baseAddress!)
                parallelFor(workspaces.count) { t in
                    var c = t
                    while c < chunks {
                        let start = c * chunk, count = min(chunk, rows - start)
                        let ws = workspaces[t]
                        ws.loadRows(from: xBase.pointer, rows: Array(start..<start + count), width: layerSizes[0])
                        let out = ws.forward(self, count: count)
                        (rBase.pointer + start * outWidth).update(from: out, count: count * outWidth)
                        c += workspaces.count
                    }
                }
            }
        }
        return result
    }

    /// Head probabilities (classification, `rows × classes`) or values (regression, `rows × 1`).
    func predict(_ x: [Double], rows: Int, threads: Int = 1) -> [Double] {
        var raw = outputs(x, rows: rows, threads: threads)
        switch head {
        case .identity:
            return raw
        case .sigmoid:
            var probabilities = [Double](repeating: 0, count: rows * 2)
            for r in 0..<rows {
                let p = sigmoid(raw[r])
                probabilities[2 * r] = 1 - p
                probabilities[2 * r + 1] = p
            }
            return probabilities
        case .softmax:
            let k = layerSizes.last!
            raw.withUnsafeMutableBufferPointer { p in
                for r in 0..<rows { softmaxInPlace(p.baseAddress! + r * k, k) }
            }
            return raw
        }
    }
}

@inline(__always) func sigmoid(_ z: Double) -> Double {
    z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))
}

/// Replaces `k` logits by their softmax; returns log Σ exp(z) (before the replacement).
@discardableResult
func softmaxInPlace(_ z: UnsafeMutablePointer<Double>, _ k: Int) -> Double {
    var m = -Double.infinity
    for i in 0..<k { m = max(m, z[i]) }
    var sum = 0.0
    for i in 0..<k {
        let e = exp(z[i] - m)
        z[i] = e
        sum += e
    }
    for i in 0..<k { z[i] /= sum }
    return m + log(sum)
}

/// Runs `body(0..<count)` on up to `count` threads, returning when all are done.
func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 {
        if count == 1 { body(0) }
        return
    }
    withoutActuallyEscaping(body) { body in
        let box = UncheckedBox(body)
        DispatchQueue.concurrentPerform(iterations: count) { box.value($0) }
    }
}

import Dispatch

/// A value shared with worker threads that only touch disjoint parts of what it points at.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafePointer<Double>
    init(_ pointer: UnsafePointer<Double>) { self.pointer = pointer }
}

struct SendableMutablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Double>
    init(_ pointer: UnsafeMutablePointer<Double>) { self.pointer = pointer }
}

/// One thread's buffers for a forward and backward pass over up to `capacity` rows, and its
/// gradient sum. Owned by one thread at a time.
final class Workspace: @unchecked Sendable {
    let capacity: Int
    /// `activations[0]` is the input; `activations[l + 1]` layer `l`'s output (after its activation
    /// for hidden layers, raw for the last).
    var activations: [UnsafeMutablePointer<Double>]
    var delta: UnsafeMutablePointer<Double>
    var deltaPrevious: UnsafeMutablePointer<Double>
    let gradient: UnsafeMutablePointer<Double>
    let parameterCount: Int
    /// The summed data loss of the last `accumulateGradient`.
    var loss = 0.0

    init(network: Network, capacity: Int) {
        self.capacity = capacity
        activations = network.layerSizes.map { size in
            let p = UnsafeMutablePointer<Double>.allocate(capacity: capacity * size)
            p.initialize(repeating: 0, count: capacity * size)
            return p
        }
        let widest = network.layerSizes.max()!
        delta = .allocate(capacity: capacity * widest)
        delta.initialize(repeating: 0, count: capacity * widest)
        deltaPrevious = .allocate(capacity: capacity * widest)
        deltaPrevious.initialize(repeating: 0, count: capacity * widest)
        parameterCount = network.parameters.count
        gradient = .allocate(capacity: parameterCount)
        gradient.initialize(repeating: 0, count: parameterCount)
    }

    deinit {
        for p in activations { p.deallocate() }
        delta.deallocate()
        deltaPrevious.deallocate()
        gradient.deallocate()
    }

    /// Copies the given rows of `x` into the input buffer.
    func loadRows(from x: UnsafePointer<Double>, rows: [Int], width: Int) {
        for (i, r) in rows.enumerated() { (activations[0] + i * width).update(from: x + r * width, count: width) }
    }

    /// The forward pass over the first `count` loaded rows; returns the raw outputs.
    func forward(_ network: Network, count: Int) -> UnsafeMutablePointer<Double> {
        network.parameters.withUnsafeBufferPointer { params in
            let p = params.baseAddress!
            for l in 0..<network.layerCount {
                let nIn = network.layerSizes[l], nOut = network.layerSizes[l + 1]
                let w = p + network.weightOffset(l), b = w + nOut * nIn
                let x = activations[l], y = activations[l + 1]
                let hidden = l < network.layerCount - 1
                for r in 0..<count {
                    let xr = x + r * nIn, yr = y + r * nOut
                    for o in 0..<nOut {
                        let wo = w + o * nIn
                        var s = 0.0
                        for i in 0..<nIn { s += wo[i] * xr[i] }
                        s += b[o]
                        if hidden { s = network.activation == .relu ? max(0, s) : tanh(s) }
                        yr[o] = s
                    }
                }
            }
        }
        return activations[network.layerCount]
    }

    /// Forward and backward over the loaded rows with their targets; sets `gradient` to the summed
    /// (not averaged) gradient of the data loss and `loss` to the summed loss.
    /// `targets` holds class indices (classification) or values (regression), one per row.
    func accumulateGradient(_ network: Network, count: Int, targets: UnsafePointer<Double>) {
        gradient.update(repeating: 0, count: parameterCount)
        let out = forward(network, count: count)
        let k = network.layerSizes.last!
        var loss = 0.0
        // δ of the last layer: ∂loss/∂z.
        for r in 0..<count {
            let z = out + r * k, d = delta + r * k
            switch network.head {
            case .identity:
                let e = z[0] - targets[r]
                loss += 0.5 * e * e
                d[0] = e
            case .sigmoid:
                let y = targets[r], v = z[0]
                loss += max(v, 0) - y * v + log1p(exp(-abs(v)))
                d[0] = sigmoid(v) - y
            case .softmax:
                for i in 0..<k { d[i] = z[i] }
                let logSum = softmaxInPlace(d, k)
                let y = Int(targets[r])
                loss += logSum - z[y]
                d[y] -= 1
            }
        }
        self.loss = loss
        network.parameters.withUnsafeBufferPointer { params in
            let p = params.baseAddress!
            for l in stride(from: network.layerCount - 1, through: 0, by: -1) {
                let nIn = network.layerSizes[l], nOut = network.layerSizes[l + 1]
                let w = p + network.weightOffset(l)
                let gw = gradient + network.weightOffset(l), gb = gw + nOut * nIn
                let x = activations[l]
                for r in 0..<count {
                    let xr = x + r * nIn, dr = delta + r * nOut
                    for o in 0..<nOut {
                        let g = dr[o]
                        if g == 0 { continue }
                        gb[o] += g
                        let gwo = gw + o * nIn
                        for i in 0..<nIn { gwo[i] += g * xr[i] }
                    }
                }
                guard l > 0 else { break }
                // δ of the previous (hidden) layer, through its activation.
                for r in 0..<count {
                    let dp = deltaPrevious + r * nIn, dr = delta + r * nOut, xr = x + r * nIn
                    dp.update(repeating: 0, count: nIn)
                    for o in 0..<nOut {
                        let g = dr[o]
                        if g == 0 { continue }
                        let wo = w + o * nIn
                        for i in 0..<nIn { dp[i] += g * wo[i] }
                    }
                    if network.activation == .relu {
                        for i in 0..<nIn where xr[i] <= 0 { dp[i] = 0 }
                    } else {
                        for i in 0..<nIn { dp[i] *= 1 - xr[i] * xr[i] }
                    }
                }
                swap(&delta, &deltaPrevious)
            }
        }
    }
}
