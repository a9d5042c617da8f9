// `swerve bench --math`: the vector math kernels' accuracy against libm over every float of each
// function's range, and their speed beside libm's, on every variant this CPU runs.
import Dispatch
import Foundation
import SwerveInference

#if canImport(Glibc)
import Glibc
#endif

/// libm's single-precision function of the same name, for the speed baseline.
private func libmFunction(_ name: String) -> (Float) -> Float {
    switch name {
    case "exp": return { expf($0) }
    case "log": return { logf($0) }
    case "tanh": return { tanhf($0) }
    case "sigmoid": return { 1 / (1 + expf(-$0)) }
    case "erf": return { erff($0) }
    case "softplus": return { log1pf(expf($0)) }
    case "rsqrt": return { 1 / sqrtf($0) }
    case "gelu": return { $0 * 0.5 * (1 + erff($0 * 0.70710678)) }
    default: return { $0 * 0.5 * (1 + tanhf(0.79788456 * ($0 + 0.044715 * $0 * $0 * $0))) }
    }
}

func runMathBench(stride: UInt64, variants wanted: [String]?, functions names: [String]?) {
    let variants = VectorMath.variants.filter { wanted == nil || wanted!.contains($0) }
    let functions = VectorMath.functions.filter { names == nil || names!.contains($0.name) }
    print("vector math against double-precision libm; every \(stride == 1 ? "" : "\(stride)th ")float of each range; variants \(variants.joined(separator: ", ")) (selected: \(VectorMath.selected))")
    // Speed: 4,096 values of the range through the kernel and through libm, 2,000 times each.
    let n = 4096
    var rows: [String] = []
    for f in functions {
        var xs = [Float](repeating: 0, count: n), ys = [Float](repeating: 0, count: n)
        let lo = max(f.range.lowerBound, -20), hi = min(f.range.upperBound, 20)
        for i in 0..<n { xs[i] = lo + (hi - lo) * Float(i) / Float(n - 1) }
        let g = libmFunction(f.name)
        var t0 = DispatchTime.now().uptimeNanoseconds
        var sink: Float = 0
        for _ in 0..<2000 { for i in 0..<n { ys[i] = g(xs[i]) }; sink += ys[n / 2] }
        let libmNs = Double(DispatchTime.now().uptimeNanoseconds - t0) / Double(2000 * n)
        for v in variants {
            let started = Date()
            print("  \(f.name) on \(v): measuring \(f.range)…")
            let e = VectorMath.measure(f, variant: v, stride: stride)
            t0 = DispatchTime.now().uptimeNanoseconds
            xs.withUnsafeBufferPointer { px in
                ys.withUnsafeMutableBufferPointer { py in
                    for _ in 0..<2000 { VectorMath.apply(f, variant: v, px.baseAddress!, py.baseAddress!, count: n) }
                }
            }
            sink += ys[n / 2]
            let ns = Double(DispatchTime.now().uptimeNanoseconds - t0) / Double(2000 * n)
            let error = f.mixedError
                ? String(format: "%.2e of max(|y|,1)", e.maxMixed)
                : String(format: "%.2f ulp (rel %.1e)", e.maxULP, e.maxRelative)
            rows.append(String(format: "| %@ | %@ | [%g, %g] | %llu | %@ | %g | %llu | %.2f | %.2f | %.1fx |",
                               f.name, v, f.range.lowerBound, f.range.upperBound, e.count, error, e.worstInput,
                               e.specialMismatches, ns, libmNs, libmNs / ns))
            print("    \(rows.last!)  (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)")
        }
        if sink == 12345 { print("") }  // keeps the timed loops from being optimized away
    }
    print("\n| function | variant | range | floats | max error | worst x | NaN/inf mismatches | ns/element | libm ns/element | speed vs libm |")
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|")
    rows.forEach { print($0) }
}
