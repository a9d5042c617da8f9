import Foundation
import Testing
import SwerveInference
import SwerveProto
import SwerveRepository
@testable import SwerveServing

@Suite struct DriftMonitorTests {
    /// scipy.special.kolmogorov at the same points (scipy 1.x), across both series' ranges.
    @Test func kolmogorovSurvivalMatchesScipy() {
        let expected: [(Double, Double)] = [
            (0.1, 1.0), (0.5, 0.9639452436648751), (0.81, 0.5279614323123148), (0.82, 0.5119717052984973),
            (0.83, 0.4961909953505036), (1.0, 0.26999967167735456), (1.36, 0.049485876755377876),
            (2.0, 0.0006709252557796953), (3.0, 3.045995948942526e-08),
        ]
        for (x, q) in expected {
            #expect(abs(DriftStatistics.kolmogorovSurvival(x) - q) <= 1e-12 * max(1, q) + 1e-15, "Q(\(x))")
        }
        #expect(DriftStatistics.kolmogorovSurvival(0) == 1)
        #expect(DriftStatistics.kolmogorovSurvival(.infinity) == 0)
        #expect(DriftStatistics.kolmogorovSurvival(.nan).isNaN)
    }

    @Test func binnedKolmogorovSmirnovByHand() {
        // Reference shares 0.25 each (n = 1000); window counts 10, 20, 30, 40 (m = 100).
        // Cumulative: 0.25/0.1, 0.5/0.3, 0.75/0.6, 1/1 → D = 0.2; n = 1000·100/1100.
        let r = DriftStatistics.binnedKolmogorovSmirnov(referenceShares: [0.25, 0.25, 0.25, 0.25], referenceCount: 1000, counts: [10, 20, 30, 40])
        #expect(abs(r.d - 0.2) < 1e-12)
        #expect(abs(r.p - DriftStatistics.kolmogorovSurvival(0.2 * (1000.0 * 100 / 1100).squareRoot())) < 1e-15)
        let empty = DriftStatistics.binnedKolmogorovSmirnov(referenceShares: [0.5, 0.5], referenceCount: 10, counts: [0, 0])
        #expect(empty.d.isNaN && empty.p.isNaN)
    }

    @Test func quantilesInterpolateAsNumpy() {
        // numpy.quantile([1, 2, 3, 4], [0.05, 0.25, 0.5, 0.75, 0.95]) = 1.15, 1.75, 2.5, 3.25, 3.85
        let q = DriftStatistics.quantiles(sorted: [1, 2, 3, 4], levels: DriftMonitor.quantileLevels)
        for (a, b) in zip(q, [1.15, 1.75, 2.5, 3.25, 3.85]) { #expect(abs(a - b) < 1e-12) }
    }

    // MARK: A monitor over a two-feature model

    static func normals(_ n: Int, mean: Double, seed: UInt64) -> [Double] {
        var g = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            let u1 = max(g.nextUnit(), 1e-300), u2 = g.nextUnit()
            return mean + (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
    }

    static let reference = ReferenceStatistics(
        rowCount: 20_000,
        numeric: ["x": NumericReference(values: normals(20_000, mean: 0, seed: 1))],
        categorical: ["device": CategoricalReference(values: (0..<20_000).map { ["mobile", "desktop", "tablet"][$0 % 4 == 3 ? 2 : $0 % 2] })],
        features: [FeatureColumn(name: "x", input: "numeric", column: 0), FeatureColumn(name: "device", input: "categorical", column: 0),
                   FeatureColumn(name: "missing_input", input: "nope", column: 0)])

    static func monitor(windows: Int = 10, minSamples: Int = 200, nowMs: UInt64 = 0) -> DriftMonitor {
        var s = ModelSettings.MonitoringSettings()
        s.sampleRate = 1
        s.windowSeconds = 60
        s.windows = windows
        s.minSamples = minSamples
        return DriftMonitor(model: "m", version: 1, reference: reference,
                            inputs: [TensorInfo(name: "numeric", dataType: .fp32, shape: [-1, 1]),
                                     TensorInfo(name: "categorical", dataType: .bytes, shape: [-1, 1])],
                            outputs: [TensorInfo(name: "label", dataType: .int64, shape: [-1]),
                                      TensorInfo(name: "probabilities", dataType: .fp32, shape: [-1, 2])],
                            batched: true, settings: s, nowMs: nowMs)!
    }

    static func feed(_ m: DriftMonitor, x: [Double], devices: [String], nowMs: UInt64) {
        m.observe(inputs: [.fp32(x.map(Float.init)), .bytes(devices.map { Array($0.utf8) })], rows: x.count,
                  outputs: [(0, [x.count], .int64(x.map { $0 > 0 ? 1 : 0 })),
                            (1, [x.count, 2], .fp32(x.flatMap { [Float(0.5 - $0 / 10), Float(0.5 + $0 / 10)] }))],
                  nowMs: nowMs)
    }

    @Test func windowStatisticsEqualADirectComputation() throws {
        let m = Self.monitor()
        #expect(m.unmapped == ["missing_input"])
        let x = Self.normals(500, mean: 0.3, seed: 7).map { Double(Float($0)) }
        var devices = (0..<500).map { ["mobile", "desktop", "tablet"][$0 % 3] }
        devices[0] = "watch"; devices[1] = ""; devices[2] = "watch"
        for i in stride(from: 0, to: 500, by: 50) {
            Self.feed(m, x: Array(x[i..<i + 50]), devices: Array(devices[i..<i + 50]), nowMs: 1_000)
        }
        let r = m.report(nowMs: 2_000)
        #expect(r.windows.count == 1 && r.windows[0].rows == 500 && r.windows[0].endMs == 0)
        let fx = try #require(r.features.first { $0.name == "x" })
        let ref = Self.reference.numeric["x"]!
        let counts = NumericReference.histogram(x, binEdges: ref.binEdges)
        #expect(fx.windows[0].binCounts == counts.map(UInt64.init))
        let psi = populationStabilityIndex(reference: ref.proportions, actual: counts.map { Double($0) / 500 })
        #expect(abs(fx.windows[0].psi - psi) < 1e-12)
        let ks = DriftStatistics.binnedKolmogorovSmirnov(referenceShares: ref.proportions, referenceCount: ref.count, counts: counts.map(UInt64.init))
        #expect(fx.windows[0].ksStatistic == ks.d && fx.windows[0].ksPValue == ks.p)
        #expect(abs(fx.windows[0].mean - x.reduce(0, +) / 500) < 1e-9)
        let fd = try #require(r.features.first { $0.name == "device" })
        #expect(fd.categories == ["desktop", "mobile", "tablet"])
        #expect(fd.windows[0].missing == 1 && fd.windows[0].count == 499)
        #expect(fd.windows[0].outOfVocabulary == ["watch"] && fd.windows[0].outOfVocabularyCounts == [2])
        #expect(fd.windows[0].binCounts.reduce(0, +) == 499 && fd.windows[0].binCounts.last == 2)
        #expect(fd.windows[0].ksStatistic.isNaN)
        let label = try #require(r.outputs.first { $0.name == "label" })
        #expect(label.kind == "class" && label.windows[0].classes == ["0", "1"])
        #expect(label.windows[0].classCounts.reduce(0, +) == 500)
        let probabilities = try #require(r.outputs.first { $0.name == "probabilities" })
        #expect(probabilities.kind == "class_score" && probabilities.windows[0].scoreCount == 500)
    }

    @Test func windowsCloseOnTimeAndAreBounded() {
        let m = Self.monitor(windows: 3)
        for w in 0..<6 {
            Self.feed(m, x: Self.normals(250, mean: 0, seed: UInt64(w)), devices: Array(repeating: "mobile", count: 250), nowMs: UInt64(w) * 60_000 + 5)
        }
        m.tick(nowMs: 6 * 60_000 + 1)
        let r = m.report(nowMs: 6 * 60_000 + 2)
        #expect(r.windows.count == 4)  // 3 closed + the open one
        #expect(r.windows.map(\.startMs) == [180_000, 240_000, 300_000, 360_000])
        #expect(r.windows.prefix(3).allSatisfy { $0.rows == 250 && $0.endMs == $0.startMs + 60_000 })
        #expect(r.windows.last!.rows == 0 && r.windows.last!.endMs == 0)
        // A window under min_samples reports no drift.
        #expect(r.features.allSatisfy { $0.windows.last!.psi.isNaN })
        // Every device was "mobile": categorical drift is large in every closed window.
        let device = r.features.first { $0.name == "device" }!
        #expect(device.windows.prefix(3).allSatisfy { $0.psi > 0.25 })
        #expect(r.windows.prefix(3).allSatisfy { $0.drifted >= 1 })
    }

    /// The false-alarm rate on windows drawn from the reference distribution, and detection of a
    /// shift of one standard deviation, at min_samples rows per window.
    @Test func noDriftOnTheReferenceDistributionAndDriftOnAShiftedOne() {
        let windows = 400
        var falseAlarms = 0, detected = 0
        for w in 0..<windows {
            let m = Self.monitor(minSamples: 200)
            let same = Self.normals(200, mean: 0, seed: 1000 + UInt64(w))
            let devices = (0..<200).map { i in ["mobile", "desktop", "tablet"][(i + w) % 4 == 3 ? 2 : (i + w) % 2] }
            Self.feed(m, x: same, devices: devices, nowMs: 0)
            let r = m.report(nowMs: 1)
            if r.features.contains(where: { $0.windows[0].psi > 0.25 }) { falseAlarms += 1 }
            let shifted = Self.monitor(minSamples: 200)
            Self.feed(shifted, x: Self.normals(200, mean: 1, seed: 5000 + UInt64(w)), devices: devices, nowMs: 0)
            if shifted.report(nowMs: 1).features.first(where: { $0.name == "x" })!.windows[0].psi > 0.25 { detected += 1 }
        }
        // Stated in the README: at 200 rows and 10 bins, PSI > 0.25 on no in-distribution window
        // of 400, and on every window shifted by one standard deviation.
        #expect(falseAlarms == 0, "false alarms: \(falseAlarms) of \(windows)")
        #expect(detected == windows, "detected: \(detected) of \(windows)")
    }

    @Test func memoryIsBoundedPerWindow() {
        let m = Self.monitor()
        for i in 0..<40 {
            let devices = (0..<100).map { "unseen-\(i)-\($0)" }
            Self.feed(m, x: Self.normals(100, mean: 0, seed: UInt64(i)), devices: devices, nowMs: 10)
        }
        let r = m.report(nowMs: 11)
        let device = r.features.first { $0.name == "device" }!
        #expect(device.windows[0].outOfVocabulary.count == DriftMonitor.maxUnseenValues)
        #expect(device.windows[0].binCounts.last == 4000)
        #expect(r.features.first { $0.name == "x" }!.windows[0].count == 4000)
    }

    @Test func noMonitorWithoutMappedFeaturesOrWithSamplingOff() {
        var s = ModelSettings.MonitoringSettings()
        let inputs = [TensorInfo(name: "input", dataType: .fp32, shape: [-1, 4])]
        let unmatched = ReferenceStatistics(rowCount: 1, numeric: ["a": NumericReference(values: [1, 2])])
        #expect(DriftMonitor(model: "m", version: 1, reference: unmatched, inputs: inputs, outputs: [], batched: true, settings: s, nowMs: 0) == nil)
        let byName = ReferenceStatistics(rowCount: 1, numeric: ["input": NumericReference(values: [1, 2])])
        #expect(DriftMonitor(model: "m", version: 1, reference: byName, inputs: inputs, outputs: [], batched: true, settings: s, nowMs: 0) == nil)
        let scalar = [TensorInfo(name: "input", dataType: .fp32, shape: [-1, 1])]
        #expect(DriftMonitor(model: "m", version: 1, reference: byName, inputs: scalar, outputs: [], batched: true, settings: s, nowMs: 0) != nil)
        s.sampleRate = 0
        #expect(DriftMonitor(model: "m", version: 1, reference: byName, inputs: scalar, outputs: [], batched: true, settings: s, nowMs: 0) == nil)
        let outOfRange = ReferenceStatistics(rowCount: 1, numeric: ["a": NumericReference(values: [1, 2])],
                                             features: [FeatureColumn(name: "a", input: "input", column: 4)])
        #expect(DriftMonitor(model: "m", version: 1, reference: outOfRange, inputs: inputs, outputs: [], batched: true,
                             settings: ModelSettings.MonitoringSettings(), nowMs: 0) == nil)
    }

    @Test func monitoringSettingsParse() throws {
        let s = try ModelSettings(json: Data(#"{"monitoring": {"sample_rate": 0.5, "window_seconds": 30, "windows": 4, "min_samples": 50, "psi_threshold": 0.1}}"#.utf8))
        #expect(s.monitoring.sampleRate == 0.5 && s.monitoring.windowSeconds == 30 && s.monitoring.windows == 4)
        #expect(s.monitoring.minSamples == 50 && s.monitoring.psiThreshold == 0.1)
        #expect(try ModelSettings(json: Data("{}".utf8)).monitoring == ModelSettings.MonitoringSettings())
        let whole = try ModelSettings(json: Data(#"{"monitoring": {"sample_rate": 1.0, "window_seconds": 1, "min_samples": 10.0}}"#.utf8))
        #expect(whole.monitoring.sampleRate == 1 && whole.monitoring.windowSeconds == 1 && whole.monitoring.minSamples == 10)
        #expect(try ModelSettings(json: Data(#"{"monitoring": {"sample_rate": 0}}"#.utf8)).monitoring.sampleRate == 0)
        for bad in [#"{"monitoring": {"sample_rate": 2}}"#, #"{"monitoring": {"window_seconds": 0}}"#, #"{"monitoring": {"windows": 1.5}}"#,
                    #"{"monitoring": {"min_samples": 5}}"#, #"{"monitoring": {"psi_threshold": 0}}"#, #"{"monitoring": {"rate": 1}}"#,
                    #"{"monitoring": {"sample_rate": true}}"#, #"{"monitoring": 1}"#] {
            #expect(throws: StorageError.self, "\(bad)") { try ModelSettings(json: Data(bad.utf8)) }
        }
    }

    @Test func driftResponseRoundTrips() throws {
        let m = Self.monitor()
        Self.feed(m, x: Self.normals(300, mean: 0, seed: 3), devices: Array(repeating: "tablet", count: 300), nowMs: 5)
        m.tick(nowMs: 61_000)
        let response = DriftResponse(versions: [m.report(nowMs: 61_001)])
        let decoded = try DriftResponse(serializedBytes: response.serializedBytes())
        // NaN != NaN: compare the encodings.
        #expect(decoded.serializedBytes() == response.serializedBytes())
        #expect(decoded.versions[0].features.count == 2 && decoded.versions[0].windows.count == 2)
    }
}
