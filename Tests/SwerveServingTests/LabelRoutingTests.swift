import Foundation
import Logging
import SwerveInference
import SwerveRepository
import Testing
@testable import SwerveServing

/// Version labels on one server: labelled versions stay loaded whatever the version policy says,
/// unversioned requests follow `stable` and, for their share, `canary`, split by route hash.
@Suite struct LabelRoutingTests {
    let base = ModelManagerTests()

    func writeLabels(_ root: URL, _ model: String, _ json: String) throws {
        let file = root.appendingPathComponent(model).appendingPathComponent("labels.json")
        try Data(json.utf8).write(to: file)
    }

    @Test func labelledVersionsStayLoadedAndStableAnswersUnversionedRequests() throws {
        let root = try base.makeRepo(["m/1": "example", "m/2": "example", "m/3": "example"])
        defer { try? FileManager.default.removeItem(at: root) }
        try writeLabels(root, "m", #"{"stable": 1, "canary_percent": 0, "generation": 1}"#)
        let mm = base.manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        // latest(1) wants 3; the stable label keeps 1 loaded too.
        #expect(mm.readyVersions(of: "m") == [1, 3])
        #expect(try mm.resolve(model: "m", version: "").version == 1)
        #expect(try mm.resolve(model: "m", version: "stable").version == 1)
        #expect(try mm.resolve(model: "m", version: "3").version == 3)
        #expect(throws: ServingError(.notFound, "model 'm' has no canary version")) { try mm.resolve(model: "m", version: "canary") }
        #expect(throws: ServingError.self) { try mm.resolve(model: "m", version: "beta") }
        #expect(mm.appliedLabels(of: "m") == .init(stable: 1, canary: 0, canaryPercent: 0, generation: 1, problem: nil))
    }

    /// A name given as bytes (as a request carries it) resolves as the String does: long and
    /// short names, versions and labels, and names that are not loaded or differ by one byte.
    @Test func namesGivenAsBytesResolveAsStringsDo() throws {
        let long = "a_model_name_longer_than_fifteen_bytes"
        // Enough models that the sorted hash table's binary search takes several steps.
        let others = (0..<9).map { "other_\($0)" }
        var layout = ["m/1": "example", "m/2": "example", "\(long)/4": "example"]
        for name in others { layout["\(name)/1"] = "example" }
        let root = try base.makeRepo(layout)
        defer { try? FileManager.default.removeItem(at: root) }
        let mm = base.manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        func bytes(_ name: String, _ version: String = "") throws -> ServedModel {
            let utf8 = Array(name.utf8)
            return try utf8.withUnsafeBytes { try mm.resolve(modelNameBytes: $0, version: version, routeHash: { 0 }) }
        }
        #expect(try bytes(long) === mm.resolve(model: long, version: ""))
        #expect(try bytes("m") === mm.resolve(model: "m", version: ""))
        for name in others { #expect(try bytes(name) === mm.resolve(model: name, version: "")) }
        // Found by the request path's own lookup, not by the fallback that makes a String.
        for name in others + ["m", long] {
            let route = Array(name.utf8).withUnsafeBytes { mm.defaultRoute(nameBytes: $0) }
            #expect(try route?.stable === mm.resolve(model: name, version: ""), "\(name)")
        }
        for unknown in ["n", "other_9", long + "x"] {
            #expect(Array(unknown.utf8).withUnsafeBytes { mm.defaultRoute(nameBytes: $0) } == nil, "\(unknown)")
        }
        #expect(try bytes("m", "2").version == 2)  // the default policy serves the latest version only
        #expect(try bytes("m", "stable").version == 2)
        for unknown in ["n", "m2", String(long.dropLast()), long + "x", ""] {
            #expect(throws: ServingError.self) { try bytes(unknown) }
        }
        #expect(throws: ServingError(.notFound, "unknown model 'zz'")) { try bytes("zz") }
    }

    @Test func canaryTakesItsShareByHashAndTheSameHashAlwaysMeetsTheSameVersion() throws {
        let root = try base.makeRepo(["m/1": "example", "m/2": "example"])
        defer { try? FileManager.default.removeItem(at: root) }
        try writeLabels(root, "m", #"{"stable": 1, "canary": 2, "canary_percent": 25, "generation": 2}"#)
        let mm = base.manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        var g = SplitMix64(seed: 7)
        var canary = 0
        let n = 20_000
        for _ in 0..<n {
            let h = g.next()
            let v = try mm.resolve(model: "m", version: "", routeHash: { h }).version
            if v == 2 { canary += 1 }
            #expect(try mm.resolve(model: "m", version: "", routeHash: { h }).version == v)
        }
        let share = Double(canary) / Double(n)
        #expect(abs(share - 0.25) < 0.02, "canary share \(share)")
        // Without a hash (other RPCs), an unversioned request is stable's.
        #expect(try mm.resolve(model: "m", version: "").version == 1)
        #expect(try mm.resolve(model: "m", version: "canary").version == 2)
        #expect(mm.appliedLabels(of: "m")?.canary == 2)
    }

    @Test func shareBoundariesAreExact() throws {
        #expect(ModelManager.Route.threshold(percent: 0) == 0)
        #expect(ModelManager.Route.threshold(percent: 100) == 1 << 53)
        let root = try base.makeRepo(["m/1": "example", "m/2": "example"])
        defer { try? FileManager.default.removeItem(at: root) }
        try writeLabels(root, "m", #"{"stable": 1, "canary": 2, "canary_percent": 100, "generation": 1}"#)
        let mm = base.manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        for h: UInt64 in [0, 1, .max, .max / 2] {
            #expect(try mm.resolve(model: "m", version: "", routeHash: { h }).version == 2)
        }
    }

    @Test func aCanaryThatFailsToLoadIsNotAppliedAndStableKeepsServing() throws {
        let root = try base.makeRepo(["m/1": "example", "m/2": "not an onnx file"])
        defer { try? FileManager.default.removeItem(at: root) }
        try writeLabels(root, "m", #"{"stable": 1, "canary": 2, "canary_percent": 50, "generation": 3}"#)
        let mm = base.manager(root)
        #expect(throws: ServingError.self) { try mm.loadAll(); try mm.load(model: "m") }
        defer { mm.shutdown() }
        for h: UInt64 in [0, .max] {
            #expect(try mm.resolve(model: "m", version: "", routeHash: { h }).version == 1)
        }
        #expect(mm.appliedLabels(of: "m") == .init(stable: 1, canary: 0, canaryPercent: 0, generation: 3, problem: nil))
        #expect(throws: ServingError.self) { try mm.resolve(model: "m", version: "canary") }
        let v2 = mm.index().first { $0.name == "m" && $0.version == "2" }
        #expect(v2?.state == .unavailable)
        // The server stays ready: stable serves.
        #expect(mm.readiness(strict: true).ready)
    }

    @Test func promotionKeepsThePreviousStableLoadedUntilTheNextOne() throws {
        let root = try base.makeRepo(["m/1": "example", "m/2": "example", "m/3": "example"],
                                     configs: ["m": #"{"version_policy": {"specific": {"versions": [3]}}}"#])
        defer { try? FileManager.default.removeItem(at: root) }
        let registry = ModelRegistry(repository: root)
        var l = try registry.labels(of: "m")
        l.stable = 1
        l = try registry.setLabels(model: "m", l)
        let mm = base.manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        #expect(mm.readyVersions(of: "m") == [1, 3])

        l.canary = 2
        l.canaryPercent = 10
        l = try registry.setLabels(model: "m", l)
        try mm.load(model: "m")
        #expect(mm.readyVersions(of: "m") == [1, 2, 3])

        l.stable = 2
        l.canary = nil
        l.canaryPercent = 0
        l = try registry.setLabels(model: "m", l)
        #expect(l.previousStable == 1 && l.canaryPercent == 0)
        try mm.load(model: "m")
        #expect(mm.readyVersions(of: "m") == [1, 2, 3])
        #expect(try mm.resolve(model: "m", version: "").version == 2)

        l.stable = 3
        l = try registry.setLabels(model: "m", l)
        #expect(l.previousStable == 2)
        try mm.load(model: "m")
        // 1 was the previous stable only; the next promotion lets it go.
        #expect(mm.readyVersions(of: "m") == [2, 3])
        #expect(try mm.resolve(model: "m", version: "").version == 3)
    }

    @Test func aBrokenLabelsFileKeepsTheLabelsLastRead() throws {
        let root = try base.makeRepo(["m/1": "example", "m/2": "example"])
        defer { try? FileManager.default.removeItem(at: root) }
        try writeLabels(root, "m", #"{"stable": 1, "generation": 1, "canary_percent": 0}"#)
        let mm = base.manager(root)
        try mm.loadAll()
        defer { mm.shutdown() }
        #expect(try mm.resolve(model: "m", version: "").version == 1)
        try writeLabels(root, "m", #"{"stable": "#)
        try? mm.load(model: "m")
        #expect(try mm.resolve(model: "m", version: "").version == 1)
        #expect(mm.readyVersions(of: "m") == [1, 2])
        #expect(mm.appliedLabels(of: "m")?.problem?.contains("labels.json") == true)
    }
}

@Suite struct RolloutEvidenceTests {
    @Test func latencyBucketsAndFailures() {
        let e = RolloutEvidence()
        e.recordRequest(success: true, nanoseconds: 500)          // 0.5 µs → first bucket
        e.recordRequest(success: true, nanoseconds: 1_000_000)    // 1 ms = 10^3 µs → bucket 60
        e.recordRequest(success: false, nanoseconds: 1_100_000)   // above 10^3, at most 10^3.05
        e.recordRequest(success: true, nanoseconds: 1_000_000_000_000) // 1000 s → overflow
        let s = e.snapshot
        #expect(s.requests == 4 && s.failures == 1)
        #expect(s.latencyCounts[0] == 1 && s.latencyCounts[60] == 1 && s.latencyCounts[61] == 1)
        #expect(s.latencyCounts.last == 1)
        #expect(RolloutEvidence.latencyBoundsMicros[60] >= 1000 && RolloutEvidence.latencyBoundsMicros[61] >= 1100)
    }

    /// The bucket of any latency is the first bound at or above it: on every bound, next to it,
    /// and on log-uniform values from 0.01 µs to 10^9 µs (the binary search replaced a log10).
    @Test func latencyBucketIsTheFirstBoundAtOrAboveTheLatency() {
        let bounds = RolloutEvidence.latencyBoundsMicros
        var values: [Double] = [0, 0.5, 1, .greatestFiniteMagnitude]
        for b in bounds { values += [b, b.nextUp, b.nextDown] }
        var rng = SplitMix64(seed: 11)
        for _ in 0..<20_000 { values.append(pow(10, Double.random(in: -2...9, using: &rng))) }
        for x in values {
            let i = RolloutEvidence.latencyBucket(micros: x)
            if i < bounds.count { #expect(x <= bounds[i], "\(x) -> \(i)") } else { #expect(x > bounds.last!) }
            if i > 0 { #expect(x > bounds[i - 1], "\(x) -> \(i)") }
        }
    }

    @Test func onlyServerSideFailuresCountAgainstAVersion() {
        // UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
        #expect((0...16).filter(RolloutEvidence.countsAgainstVersion(code:)) == [2, 4, 8, 13, 14, 15])
    }

    @Test func classesFromLabelsAndFromArgmaxOfScoreVectors() {
        let e = RolloutEvidence()
        e.recordPredictions([Tensor(shape: [3], data: .int64([0, 2, 2]))])
        #expect(e.snapshot.kind == .classes && e.snapshot.classes == ["0", "2"] && e.snapshot.classCounts == [1, 2])
        let p = RolloutEvidence()
        p.recordPredictions([Tensor(shape: [2, 3], data: .fp32([0.1, 0.7, 0.2, 0.5, 0.3, 0.2]))])
        #expect(p.snapshot.classes == ["1", "0"] && p.snapshot.classCounts == [1, 1])
    }

    @Test func scoresGoToFixedBucketsWithMoments() {
        let e = RolloutEvidence()
        e.recordPredictions([Tensor(shape: [4, 1], data: .fp32([-2, 0, 0.5, .nan]))])
        let s = e.snapshot
        #expect(s.kind == .scores && s.scoreCount == 3 && s.scoreSum == -1.5 && s.scoreSumSquares == 4.25)
        #expect(s.scoreCounts.reduce(0, +) == 4)
        #expect(s.scoreCounts.last == 1)  // NaN
        let b = RolloutEvidence.scoreBounds
        #expect(b == b.sorted())
        #expect(b[RolloutEvidence.scoreBucket(0.5)] >= 0.5 && b[RolloutEvidence.scoreBucket(0.5) - 1] < 0.5)
        #expect(b[RolloutEvidence.scoreBucket(-2)] >= -2 && b[RolloutEvidence.scoreBucket(-2) - 1] < -2)
    }

    @Test func distinctClassesAreBounded() {
        let e = RolloutEvidence()
        e.recordPredictions([Tensor(shape: [1000], data: .int64((0..<1000).map(Int64.init)))])
        let s = e.snapshot
        #expect(s.classes.count == RolloutEvidence.maxClasses)
        #expect(s.classes.last == RolloutEvidence.otherClass)
        #expect(s.classCounts.reduce(0, +) == 1000)
    }
}
