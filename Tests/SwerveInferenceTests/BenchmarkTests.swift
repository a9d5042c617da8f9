import Foundation
import Testing
@testable import SwerveInference

/// BLAS vs the SIMD kernel on the shapes Swerve serves. Off by default; run in release:
///   SWERVE_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter BenchmarkTests
@Suite("GEMM benchmark", .enabled(if: ProcessInfo.processInfo.environment["SWERVE_BENCH"] != nil))
struct BenchmarkTests {
    /// Each model is a chain of layers (inputs → outputs); a batch of rows goes through all.
    static let models: [(String, [Int])] = [("30x1", [30, 1]), ("64x256x256x10", [64, 256, 256, 10])]

    @Test func compareBackends() {
        print("per layer (m×k·k×n), best of 5, µs; packed = constant weights packed at load (CSwerveKernels, \(PackedGemmISA.selected)):")
        var r = SplitMix64(seed: 1)
        func time(_ iterations: Int, _ body: () -> Void) -> Double {
            var best = Double.infinity
            for _ in 0..<5 {
                let start = ContinuousClock.now
                for _ in 0..<iterations { body() }
                let e = ContinuousClock.now - start
                best = min(best, (Double(e.components.seconds) * 1e6 + Double(e.components.attoseconds) / 1e12) / Double(iterations))
            }
            return best
        }
        for (m, k, n) in [(1, 64, 256), (4, 64, 256), (8, 64, 256), (16, 64, 256), (32, 64, 256), (256, 64, 256),
                          (1, 256, 256), (4, 256, 256), (8, 256, 256), (32, 256, 256), (256, 256, 256),
                          (1, 256, 10), (8, 256, 10), (32, 256, 10), (64, 256, 10), (256, 256, 10),
                          (1, 30, 1), (32, 30, 1), (256, 30, 1), (1, 30, 2), (256, 30, 2), (256, 30, 3), (1, 100, 4), (256, 100, 4), (256, 100, 8), (256, 784, 128), (512, 512, 512), (64, 1024, 1024)] {
            let a = r.floats(m * k), b = r.floats(k * n)
            var c = [Float](repeating: 0, count: m * n)
            let iterations = max(50, 2_000_000 / (m * n * k))
            var t: [Double] = []
            for backend in [GemmBackend.blas, .simd] where backend == .blas || m * n * k <= 1 << 24 {
                t.append(time(iterations) {
                    c.withUnsafeMutableBufferPointer { o in
                        sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n,
                              beta: 0, c: o.baseAddress!, ldc: n, backend: backend)
                    }
                })
            }
            if t.count == 1 { t.append(.nan) }
            let packed = PackedWeights(k: k, n: n, b: b, transposed: false)
            t.append(time(iterations) {
                c.withUnsafeMutableBufferPointer { o in
                    packed.multiply(m: m, a: a, lda: k, c: o.baseAddress!, ldc: n)
                }
            })
            print(String(format: "  %4d×%4d·%4d×%4d  MACs %10d   BLAS %9.2f   SIMD %9.2f   packed %9.2f  (%5.1f GFLOP/s)",
                         m, k, k, n, m * k * n, t[0], t[1], t[2], 2e-3 * Double(m * n * k) / t[2]))
        }
        var rng = SplitMix64(seed: 99)
        print("shape            batch   BLAS µs/batch   SIMD µs/batch   auto µs/batch")
        for (name, layers) in Self.models {
            let weights = (0..<(layers.count - 1)).map { rng.floats(layers[$0] * layers[$0 + 1]) }
            for batch in [1, 4, 8, 16, 32, 256] {
                let x = rng.floats(batch * layers[0])
                var times: [GemmBackend: Double] = [:]
                for backend in [GemmBackend.blas, .simd, .automatic] {
                    var buffers = layers.map { [Float](repeating: 0, count: batch * $0) }
                    buffers[0] = x
                    let iterations = max(20, 200_000 / max(1, batch * layers.reduce(0, +)))
                    func pass() {
                        for l in 0..<(layers.count - 1) {
                            let input = buffers[l]
                            buffers[l + 1].withUnsafeMutableBufferPointer { out in
                                sgemm(transA: false, transB: false, m: batch, n: layers[l + 1], k: layers[l], alpha: 1,
                                      a: input, lda: layers[l], b: weights[l], ldb: layers[l + 1],
                                      beta: 0, c: out.baseAddress!, ldc: layers[l + 1], backend: backend)
                            }
                        }
                    }
                    for _ in 0..<5 { pass() }
                    var best = Double.infinity
                    for _ in 0..<5 {
                        let start = ContinuousClock.now
                        for _ in 0..<iterations { pass() }
                        let elapsed = ContinuousClock.now - start
                        let us = Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12
                        best = min(best, us / Double(iterations))
                    }
                    times[backend] = best
                }
                print(String(format: "%-16@ %5d   %13.2f   %13.2f   %13.2f", name as NSString, batch,
                             times[.blas]!, times[.simd]!, times[.automatic]!))
            }
        }
    }
}
