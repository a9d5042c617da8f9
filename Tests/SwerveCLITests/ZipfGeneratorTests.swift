import Foundation
import SwerveInference
import Testing

@testable import swerve

/// `swerve bench`'s Zipf sampler and the request stream it draws: the distribution is right, and
/// the stream is the one `benchmarks/paths_replay.py` replays offline.
@Suite struct ZipfGeneratorTests {
    @Test(arguments: [0.8, 1.0, 1.1, 2.0])
    func frequenciesMatchTheDistribution(exponent: Double) {
        let zipf = ZipfGenerator(n: 10, exponent: exponent)
        var rng = SplitMix64(seed: 1)
        let samples = 200_000
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<samples { counts[zipf.next(using: &rng)] += 1 }
        for r in 0..<10 {
            let p = zipf.probability(ofRank: r)
            let sigma = (Double(samples) * p * (1 - p)).squareRoot()
            #expect(abs(Double(counts[r]) - Double(samples) * p) < 5 * sigma, "s=\(exponent) rank \(r): \(counts[r]) vs \(Double(samples) * p)")
        }
    }

    @Test func staysInRangeAndIsReproducible() {
        let zipf = ZipfGenerator(n: 1_000_000, exponent: 0.8)
        var a = SplitMix64(seed: 9), b = SplitMix64(seed: 9)
        for _ in 0..<10_000 {
            let x = zipf.next(using: &a)
            #expect(x >= 0 && x < 1_000_000)
            #expect(x == zipf.next(using: &b))
        }
        let one = ZipfGenerator(n: 1, exponent: 1.1)
        #expect(one.next(using: &a) == 0)
    }

    /// The first indices of `--inputs zipf:1.1 --distinct 1000000 --seed 42` and of `uniform`, as
    /// `python3 -c 'import paths_replay as p; print(list(p.stream(1.1, 1000000, 42, 10)))'` prints
    /// them (and with `None` for uniform). If either side's generator changes, the offline LRU
    /// baseline no longer replays what the server saw; regenerate both together.
    @Test func theStreamIsTheOneThePythonReplayDraws() throws {
        let stamped = IndexedInputs.Encoder.stamped(template: [], offset: 0, stamp: .fp32)
        let zipf = try IndexedInputs(draw: .zipf(ZipfGenerator(n: 1_000_000, exponent: 1.1)), distinct: 1_000_000,
                                     seed: 42, encoder: stamped, hotCount: 0)
        #expect((0..<10).map(zipf.index) == [4, 2, 0, 1060, 0, 10, 2, 0, 341, 77])
        let uniform = try IndexedInputs(draw: .uniform, distinct: 1_000_000, seed: 42, encoder: stamped, hotCount: 0)
        #expect((0..<5).map(uniform.index) == [275413, 997723, 606144, 621589, 754244])
    }
}
