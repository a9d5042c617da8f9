import Foundation
import SwerveProto
import SwerveRepository
import Synchronization
@testable import SwerveRollout

/// How a simulated version behaves on every replica.
struct VersionBehaviour: Sendable {
    /// The share of requests that fail.
    var errorRate: Double = 0
    /// Per latency bucket (of `FakeFleet.latencyBounds` + overflow), the share of requests.
    var latency: [Double] = [0, 0.5, 0.5, 0, 0, 0]
    /// Predicted class shares ("class" kind), or nil for scores.
    var classes: [String: Double]? = ["0": 0.5, "1": 0.3, "2": 0.2]
    /// Score bucket shares ("score" kind) when `classes` is nil.
    var scores: [Double] = [0.25, 0.25, 0.25, 0.25, 0]
    /// A replica that cannot load it reports this reason (UNAVAILABLE).
    var failsOn: [Int: String] = [:]
    /// Seconds a replica needs to load it.
    var loadSeconds: Double = 1
    /// A replica that never finishes loading it.
    var hangsOn: Set<Int> = []
}

/// A fleet of simulated replicas that follow a label store: each applies the labels once the
/// versions they name are READY on it, and answers requests at `rate` per second, split between
/// stable and canary by the applied share, with each version's behaviour. Time is a
/// `FakeClock`'s: `tick` advances it.
final class FakeFleet: Sendable {
    /// Each version's inputs as ModelMetadata reports them (none: the replicas cannot say).
    let signatures = Mutex<[Int: [TensorMetadata]]>([:])
    static let latencyBounds: [Double] = [1000, 2000, 4000, 8000, 16000]
    static let scoreBounds: [Double] = [0.25, 0.5, 0.75, 1.0]

    struct Replica {
        var stable = 0, canary = 0
        var percent = 0.0
        var generation: UInt64 = 0
        var loading: [Int: Double] = [:]  // version -> seconds spent loading
        var ready: Set<Int> = []
        var evidence: [Int: VersionEvidence] = [:]
        var unreachable = false
        var exact: [Int: Exact] = [:]  // each version's counters as exact fractions
    }

    struct State {
        var replicas: [Replica]
        var behaviours: [Int: VersionBehaviour]
        var rate: Double
        var time = 0.0
    }

    let state: Mutex<State>
    let store: FakeLabelStore
    let model: String

    init(replicas: Int, store: FakeLabelStore, model: String = "m", readyVersions: [Int], behaviours: [Int: VersionBehaviour], rate: Double = 100) {
        var r = Replica()
        for v in readyVersions {
            r.ready.insert(v)
            var e = VersionEvidence()
            e.version = String(v)
            e.state = "READY"
            r.evidence[v] = e
        }
        // With no labels, the highest ready version answers.
        r.stable = readyVersions.max() ?? 0
        state = Mutex(State(replicas: Array(repeating: r, count: replicas), behaviours: behaviours, rate: rate))
        self.store = store
        self.model = model
    }

    var replicas: [any RolloutReplica] {
        (0..<state.withLock { $0.replicas.count }).map { FakeReplica(fleet: self, index: $0) }
    }

    func setUnreachable(_ index: Int, _ value: Bool) { state.withLock { $0.replicas[index].unreachable = value } }
    func setRate(_ rate: Double) { state.withLock { $0.rate = rate } }

    /// Advances time by `dt` seconds: loads progress, labels are applied, traffic is answered.
    func tick(_ dt: Double) {
        let labels = store.current(model)
        state.withLock { s in
            s.time += dt
            for i in s.replicas.indices {
                var r = s.replicas[i]
                // Load every labelled version not loaded yet.
                for v in [labels.stable, labels.canary, labels.previousStable].compactMap({ $0 }) where !r.ready.contains(v) {
                    let b = s.behaviours[v] ?? VersionBehaviour()
                    if r.evidence[v] == nil { var e = VersionEvidence(); e.version = String(v); r.evidence[v] = e }
                    if let why = b.failsOn[i] { r.evidence[v]!.state = "UNAVAILABLE"; r.evidence[v]!.reason = why; continue }
                    r.loading[v, default: 0] += dt
                    r.evidence[v]!.state = "LOADING"
                    if !b.hangsOn.contains(i) && r.loading[v]! >= b.loadSeconds {
                        r.ready.insert(v)
                        r.evidence[v]!.state = "READY"
                    }
                }
                // Apply the labels once what they name is ready here.
                if labels.generation > r.generation,
                   [labels.stable, labels.canary].compactMap({ $0 }).allSatisfy(r.ready.contains) {
                    r.stable = labels.stable ?? r.stable
                    r.canary = labels.canary ?? 0
                    r.percent = labels.canary == nil ? 0 : labels.canaryPercent
                    r.generation = labels.generation
                }
                // Traffic.
                let n = s.rate * dt
                let canaryShare = r.canary > 0 ? r.percent / 100 : 0
                for (v, share) in [(r.stable, 1 - canaryShare), (r.canary, canaryShare)] where v > 0 && share > 0 {
                    r.exact[v, default: Exact()].answer(n * share, s.behaviours[v] ?? VersionBehaviour())
                    r.exact[v]!.write(into: &r.evidence[v]!)
                }
                s.replicas[i] = r
            }
        }
    }

    /// A version's counters as exact (fractional) sums, so that small ticks do not bias them;
    /// the evidence shows them rounded down, which keeps every counter monotonic.
    struct Exact {
        var requests = 0.0, failures = 0.0
        var latency = [Double](repeating: 0, count: FakeFleet.latencyBounds.count + 1)
        var classes: [String: Double] = [:]
        var scores = [Double](repeating: 0, count: FakeFleet.scoreBounds.count + 1)
        var isClass = true

        mutating func answer(_ n: Double, _ b: VersionBehaviour) {
            requests += n
            failures += n * b.errorRate
            let lt = b.latency.reduce(0, +)
            for i in latency.indices where i < b.latency.count { latency[i] += n * b.latency[i] / lt }
            if let c = b.classes {
                let t = c.values.reduce(0, +)
                for (k, w) in c { classes[k, default: 0] += n * w / t }
            } else {
                isClass = false
                let t = b.scores.reduce(0, +)
                for i in scores.indices where i < b.scores.count { scores[i] += n * b.scores[i] / t }
            }
        }

        func write(into e: inout VersionEvidence) {
            func f(_ x: Double) -> UInt64 { UInt64((x + 1e-9).rounded(.down)) }
            e.requests = f(requests)
            e.failures = f(failures)
            e.latencyCounts = latency.map(f)
            if isClass {
                e.predictionKind = "class"
                e.classes = classes.keys.sorted()
                e.classCounts = e.classes.map { f(classes[$0]!) }
            } else {
                e.predictionKind = "score"
                e.scoreCounts = scores.map(f)
                e.scoreCount = f(requests)
            }
        }
    }

    func response(_ index: Int) throws -> RolloutStatisticsResponse {
        try state.withLock { s in
            let r = s.replicas[index]
            if r.unreachable { throw FakeUnreachable() }
            var resp = RolloutStatisticsResponse()
            resp.name = model
            resp.latencyBoundsMicros = Self.latencyBounds
            resp.scoreBounds = Self.scoreBounds
            resp.stable = Int64(r.stable)
            resp.canary = Int64(r.canary)
            resp.canaryPercent = r.percent
            resp.labelsGeneration = r.generation
            resp.versions = r.evidence.keys.sorted().map { v in
                var e = r.evidence[v]!
                e.labels = (v == r.stable ? ["stable"] : []) + (v == r.canary ? ["canary"] : [])
                return e
            }
            return resp
        }
    }
}

struct FakeUnreachable: Error, CustomStringConvertible {
    var description: String { "UNAVAILABLE: connection refused" }
}

struct FakeReplica: RolloutReplica {
    let fleet: FakeFleet
    let index: Int
    var name: String { "r\(index + 1)" }
    func rolloutStatistics(model: String) async throws -> RolloutStatisticsResponse { try fleet.response(index) }
    func inputSignature(model: String, version: Int) async throws -> [TensorMetadata]? { fleet.signatures.withLock { $0[version] } }
}

/// Virtual time: `sleep` returns at once after ticking the fleet through the slept time (in
/// 0.25 s ticks); it throws `CancellationError` on the `interruptAt`-th sleep (1-based), as a
/// SIGINT would.
final class FakeClock: RolloutClock {
    let fleet: FakeFleet
    let interruptAt: Int?
    private let sleeps = Atomic<Int>(0)
    private let elapsed = Mutex<Double>(0)

    init(fleet: FakeFleet, interruptAt: Int? = nil) {
        self.fleet = fleet
        self.interruptAt = interruptAt
    }

    var sleepCount: Int { sleeps.load(ordering: .relaxed) }

    func now() -> Duration { .milliseconds(Int64(elapsed.withLock { $0 } * 1000)) }

    func sleep(for duration: Duration) async throws {
        let n = sleeps.add(1, ordering: .relaxed).newValue
        if let interruptAt, n >= interruptAt { throw CancellationError() }
        var left = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        while left > 1e-9 {
            let dt = min(0.25, left)
            fleet.tick(dt)
            elapsed.withLock { $0 += dt }
            left -= dt
        }
    }
}

/// Labels and statuses in memory, with the repository's compare-and-set rules
/// (ModelRegistry.setLabels): the generation must match unless forced; previous_stable follows
/// stable. `onWrite` runs before each write (1-based count) and may change the labels as
/// another writer would.
final class FakeLabelStore: LabelStore {
    struct State {
        var labels: [String: ModelLabels] = [:]
        var statuses: [String: [Int: (Lineage.Status, String?)]] = [:]
        var writes: [ModelLabels] = []
        var versions: [Int] = []
        /// setLabels calls so far, and those (by number, from 1) that fail as unreachable.
        var attempts = 0
        var unavailableAttempts: Set<Int> = []
    }
    let state: Mutex<State>
    let onWrite: (@Sendable (Int, FakeLabelStore) -> Void)?

    init(versions: [Int], labels: ModelLabels = ModelLabels(), statuses: [Int: Lineage.Status] = [:],
         onWrite: (@Sendable (Int, FakeLabelStore) -> Void)? = nil) {
        var s = State()
        s.versions = versions
        s.labels["m"] = labels
        s.statuses["m"] = statuses.mapValues { ($0, nil) }
        state = Mutex(s)
        self.onWrite = onWrite
    }

    var description: String { "fake store" }

    func current(_ model: String) -> ModelLabels { state.withLock { $0.labels[model] ?? ModelLabels() } }
    var writes: [ModelLabels] { state.withLock { $0.writes } }
    func statusOf(_ v: Int) -> Lineage.Status? { state.withLock { $0.statuses["m"]?[v]?.0 } }
    func reasonOf(_ v: Int) -> String? { state.withLock { $0.statuses["m"]?[v]?.1 ?? nil } }

    /// A write by another party (no compare-and-set).
    func overwrite(_ change: (inout ModelLabels) -> Void) {
        state.withLock { s in
            var l = s.labels["m"] ?? ModelLabels()
            change(&l)
            l.generation += 1
            s.labels["m"] = l
        }
    }

    func labels(of model: String) async throws -> ModelLabels {
        guard model == "m" else { throw LabelStoreError(.invalid, "no model \(model)") }
        return current(model)
    }

    func setLabels(model: String, _ new: ModelLabels, force: Bool) async throws -> ModelLabels {
        let unreachable = state.withLock { s in
            s.attempts += 1
            return s.unavailableAttempts.contains(s.attempts)
        }
        if unreachable { throw LabelStoreError(.unavailable, "the registry is unreachable (fake)") }
        let count = state.withLock { $0.writes.count } + 1
        onWrite?(count, self)
        return try state.withLock { s in
            let cur = s.labels[model] ?? ModelLabels()
            if !force && new.generation != cur.generation { throw LabelStoreError(.conflict, "generation \(cur.generation), caller read \(new.generation)") }
            var next = new
            if next.canary == nil { next.canaryPercent = 0 }
            next.previousStable = cur.stable != nil && cur.stable != new.stable ? cur.stable : (new.previousStable ?? cur.previousStable)
            if next.previousStable == next.stable { next.previousStable = nil }
            if let why = next.problem(available: s.versions) { throw LabelStoreError(.invalid, why) }
            next.generation = cur.generation + 1
            s.labels[model] = next
            s.writes.append(next)
            return next
        }
    }

    func setStatus(model: String, version: Int, _ status: Lineage.Status, reason: String) async throws {
        state.withLock { $0.statuses[model, default: [:]][version] = (status, reason) }
    }

    func status(model: String, version: Int) async throws -> (status: Lineage.Status, reason: String?)? {
        state.withLock { s in s.statuses[model]?[version].map { ($0.0, $0.1) } }
    }
}

/// Collects progress lines.
final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ l: String) { lines.withLock { $0.append(l) } }
    var all: [String] { lines.withLock { $0 } }
    var text: String { all.joined(separator: "\n") }
}
