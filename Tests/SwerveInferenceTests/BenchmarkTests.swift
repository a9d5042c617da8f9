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
        print("per layer (m×k·k×n):")
        var r = SeededGenerator(seed: 1)
        for (m, k, n) in [(1, 64, 256), (4, 64, 256), (8, 64, 256), (16, 64, 256), (1, 256, 256), (4, 256, 256), (8, 256, 256),
                          (1, 256, 10), (8, 256, 10), (32, 256, 10), (64, 256, 10), (32, 30, 1), (256, 30, 1)] {
            let a = r.floats(m * k), b = r.floats(k * n)
            var c = [Float](repeating: 0, count: m * n)
            var t: [Double] = []
            for backend in [GemmBackend.blas, .simd] {
                let iterations = max(50, 2_000_000 / (m * n * k))
                var best = Double.infinity
                for _ in 0..<5 {
                    let start = ContinuousClock.now
                    for _ in 0..<iterations {
                        c.withUnsafeMutableBufferPointer { o in
                            sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n,
                                  beta: 0, c: o.baseAddress!, ldc: n, backend: backend)
                        }
                    }
                    let e = ContinuousClock.now - start
                    best = min(best, (Double(e.components.seconds) * 1e6 + Double(e.components.attoseconds) / 1e12) / Double(iterations))
                }
                t.append(best)
            }
            print(String(format: "  %4d×%3d·%3d×%3d  MACs %8d   BLAS %8.2f µs   SIMD %8.2f µs", m, k, k, n, m * k * n, t[0], t[1]))
        }
        var rng = SeededGenerator(seed: 99)
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
