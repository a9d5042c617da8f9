import Foundation
import Synchronization
import SwerveProto
import SwerveRepository
import SwerveTesting
import Testing
@testable import SwerveRollout

/// A fleet of 3 simulated replicas serving v1 (stable) with v2 published, and a controller over
/// them with short virtual bakes.
struct Rig {
    let store: FakeLabelStore
    let fleet: FakeFleet
    let lines = Lines()
    var options: RolloutOptions

    init(canary: VersionBehaviour = VersionBehaviour(), labels: ModelLabels = ModelLabels(stable: 1, generation: 1),
         statuses: [Int: Lineage.Status] = [1: .serving, 2: .validated], replicas: Int = 3, rate: Double = 100,
         onWrite: (@Sendable (Int, FakeLabelStore) -> Void)? = nil) {
        store = FakeLabelStore(versions: [1, 2], labels: labels, statuses: statuses, onWrite: onWrite)
        fleet = FakeFleet(replicas: replicas, store: store, readyVersions: [1], behaviours: [1: VersionBehaviour(), 2: canary], rate: rate)
        fleet.tick(0.25)  // the replicas apply the labels they find
        options = RolloutOptions(model: "m", version: 2)
        options.steps = [10, 50, 100]
        options.bake = .seconds(5)
        options.readyTimeout = .seconds(20)
        options.applyTimeout = .seconds(10)
        options.gates.minRequests = 20
    }

    func controller(interruptAt: Int? = nil) -> (RolloutController, FakeClock) {
        let clock = FakeClock(fleet: fleet, interruptAt: interruptAt)
        let lines = self.lines
        return (RolloutController(options: options, store: store, replicas: fleet.replicas, clock: clock, report: { lines.add($0) }), clock)
    }

    func run() async throws -> RolloutOutcome { try await controller().0.run() }

    /// No write ever put canary traffic on v2.
    var neverMovedTraffic: Bool { store.writes.allSatisfy { $0.canaryPercent == 0 } }
}

@Suite struct RolloutControllerTests {
    @Test func promotesThroughEveryStep() async throws {
        let rig = Rig()
        let outcome = try await rig.run()
        #expect(outcome == .promoted(from: 1))
        let l = rig.store.current("m")
        #expect(l.stable == 2 && l.canary == nil && l.canaryPercent == 0 && l.previousStable == 1)
        #expect(rig.store.writes.map(\.canaryPercent) == [0, 10, 50, 100, 0])
        #expect(rig.store.writes.map(\.canary) == [2, 2, 2, 2, nil])
        #expect(rig.store.statusOf(2) == .serving)
        #expect(rig.store.statusOf(1) == .validated)
        let steps = rig.lines.all.filter { $0.hasPrefix("step ") && $0.hasSuffix("-> pass") }
        #expect(steps.count == 3, "\(rig.lines.text)")
        // Both sides' figures on every line; at 100% the stable side comes from the 50% window.
        #expect(steps.allSatisfy { $0.contains("canary v2: ") && $0.contains("stable v1: ") && $0.contains("p99 ratio") && $0.contains("shift") })
        #expect(steps[2].contains("stable from the 50% window"))
        #expect(rig.lines.text.contains("every replica routes to v2 now"))
    }

    @Test func errorRateGateRollsBack() async throws {
        let rig = Rig(canary: VersionBehaviour(errorRate: 0.05))
        guard case .rolledBack(let reason) = try await rig.run() else { Issue.record("not rolled back"); return }
        #expect(reason.hasPrefix("at 10%: error rate ") && reason.contains("% vs stable 0.00% (more than 0.10% above)"), "\(reason)")
        try expectRolledBack(rig, reasonContains: "error rate")
        #expect(rig.store.writes.map(\.canaryPercent) == [0, 10, 0])
    }

    @Test func p99GateRollsBack() async throws {
        let rig = Rig(canary: VersionBehaviour(latency: [0, 0, 0, 0.5, 0.5, 0]))
        guard case .rolledBack(let reason) = try await rig.run() else { Issue.record("not rolled back"); return }
        #expect(reason.contains("p99") && reason.contains("ratio"), "\(reason)")
        try expectRolledBack(rig, reasonContains: "p99")
    }

    @Test func predictionShiftGateRollsBack() async throws {
        let rig = Rig(canary: VersionBehaviour(classes: ["0": 0.1, "1": 0.1, "2": 0.8]))
        guard case .rolledBack(let reason) = try await rig.run() else { Issue.record("not rolled back"); return }
        #expect(reason.contains("prediction shift 0.600 (classes TVD) > 0.1"), "\(reason)")
        try expectRolledBack(rig, reasonContains: "prediction shift")
    }

    @Test func aShiftSmallerThanTheGatePasses() async throws {
        let rig = Rig(canary: VersionBehaviour(classes: ["0": 0.45, "1": 0.35, "2": 0.2]))
        #expect(try await rig.run() == .promoted(from: 1))
    }

    @Test func scoreShiftGateRollsBack() async throws {
        let store = FakeLabelStore(versions: [1, 2], labels: ModelLabels(stable: 1, generation: 1))
        let fleet = FakeFleet(replicas: 2, store: store, readyVersions: [1],
                              behaviours: [1: VersionBehaviour(classes: nil, scores: [0.25, 0.25, 0.25, 0.25, 0]),
                                           2: VersionBehaviour(classes: nil, scores: [0, 0.25, 0.25, 0.25, 0.25])])
        fleet.tick(0.25)
        var o = RolloutOptions(model: "m", version: 2)
        o.steps = [50, 100]
        o.bake = .seconds(5)
        o.gates.minRequests = 20
        let c = RolloutController(options: o, store: store, replicas: fleet.replicas, clock: FakeClock(fleet: fleet), report: { _ in })
        guard case .rolledBack(let reason) = try await c.run() else { Issue.record("not rolled back"); return }
        #expect(reason.contains("prediction shift 0.250 (scores KS)"), "\(reason)")
    }

    @Test func aReplicaThatCannotLoadStopsBeforeAnyTrafficMoves() async throws {
        let rig = Rig(canary: VersionBehaviour(failsOn: [2: "model file is 900 bytes, above the limit of 500 bytes (--max-model-bytes)"]))
        guard case .rolledBack(let reason) = try await rig.run() else { Issue.record("not rolled back"); return }
        #expect(reason == "r3 cannot load v2: model file is 900 bytes, above the limit of 500 bytes (--max-model-bytes)")
        #expect(rig.neverMovedTraffic)
        try expectRolledBack(rig, reasonContains: "--max-model-bytes")
    }

    @Test func theReadyTimeoutStopsBeforeAnyTrafficMoves() async throws {
        let rig = Rig(canary: VersionBehaviour(hangsOn: [0]))
        guard case .rolledBack(let reason) = try await rig.run() else { Issue.record("not rolled back"); return }
        #expect(reason.contains("not READY on every replica after --ready-timeout 20s: r1: v2 LOADING"), "\(reason)")
        #expect(rig.neverMovedTraffic)
        try expectRolledBack(rig, reasonContains: "ready-timeout")
    }

    @Test func insufficientTrafficRollsBackAfterFourBakes() async throws {
        var rig = Rig(rate: 2)  // 10% of 2 req/s x 3 replicas x 5 s: 3 canary requests a bake
        let (c, clock) = rig.controller()
        guard case .rolledBack(let reason) = try await c.run() else { Issue.record("not rolled back"); return }
        #expect(reason.hasPrefix("at 10%: insufficient traffic: canary"), "\(reason)")
        #expect(reason.contains("in 4 x 5s"))
        #expect(rig.lines.all.filter { $0.contains("baking on (up to 4 x)") }.count == 3)
        // 4 bakes of 5 s at the 10% step, plus the short waits.
        #expect(clock.now() >= .seconds(20))
        try expectRolledBack(rig, reasonContains: "insufficient traffic")

        // --min-requests 0 judges whatever arrived, after one bake.
        rig = Rig(rate: 2)
        rig.options.gates.minRequests = 0
        let outcome = try await rig.controller().0.run()
        if case .rolledBack(let why) = outcome { #expect(!why.contains("insufficient"), "\(why)") }
        #expect(!rig.lines.text.contains("baking on"))

        // ... but a window with no canary request at all is never a pass.
        rig = Rig(rate: 0)
        rig.options.gates.minRequests = 0
        guard case .rolledBack(let none) = try await rig.controller().0.run() else { Issue.record("promoted on no evidence"); return }
        #expect(none.contains("insufficient traffic: canary 0 requests"), "\(none)")
    }

    @Test func slowTrafficIsBakedLongerNotRolledBack() async throws {
        // 10% of 20 req/s x 3 x 5 s = 30 canary requests a bake; the gate asks 60: two bakes.
        var rig = Rig(rate: 20)
        rig.options.gates.minRequests = 60
        #expect(try await rig.controller().0.run() == .promoted(from: 1))
        #expect(rig.lines.all.contains { $0.contains("baking on") })
    }

    @Test func resumesAfterAnInterruptionAtEveryWait() async throws {
        // Interrupt the k-th wait (as SIGINT or kill would), check the labels are consistent, run
        // again; for every k until a run needs no interruption.
        var k = 1
        while true {
            let rig = Rig()
            let (first, _) = rig.controller(interruptAt: k)
            do {
                let outcome = try await first.run()
                #expect(outcome == .promoted(from: 1))
                #expect(k > 5, "a rollout with 3 steps waits more than 5 times")
                break
            } catch is CancellationError {}
            let mid = rig.store.current("m")
            #expect(mid.problem(available: [1, 2]) == nil)
            #expect(mid.stable == 1 && mid.canary == 2, "interrupted at wait \(k): \(mid)")
            let sharesBefore = rig.store.writes.count
            let outcome = try await rig.run()
            #expect(outcome == .promoted(from: 1), "resumed after wait \(k)")
            let l = rig.store.current("m")
            #expect(l.stable == 2 && l.canary == nil && l.previousStable == 1)
            #expect(rig.store.statusOf(2) == .serving && rig.store.statusOf(1) == .validated)
            // The second run never went back below the share it found.
            let resumed = rig.store.writes[sharesBefore...].map(\.canaryPercent).dropLast()
            #expect(resumed.allSatisfy { $0 >= mid.canaryPercent }, "wait \(k): \(resumed) after \(mid.canaryPercent)")
            #expect(rig.lines.text.contains("resuming: stable v1, canary v2 at"))
            k += 1
            #expect(k < 200)
            if k >= 200 { break }
        }
    }

    @Test func resumedAt100PercentComparesWithStableSinceItLoaded() async throws {
        let rig = Rig(labels: ModelLabels(stable: 1, canary: 2, canaryPercent: 100, generation: 7))
        // Stable served traffic before the rollout.
        rig.fleet.tick(0.25)
        #expect(try await rig.run() == .promoted(from: 1))
        #expect(rig.store.writes.map(\.canaryPercent) == [0])
        #expect(rig.lines.all.contains { $0.hasPrefix("step 1/1 100%") && $0.contains("stable since it loaded") })
    }

    @Test func aRolloutAlreadyDoneCompletesTheLineageAndChangesNoLabel() async throws {
        // Killed between the promotion's label write and its status writes.
        let rig = Rig(labels: ModelLabels(stable: 2, previousStable: 1, generation: 9), statuses: [1: .serving, 2: .validated])
        #expect(try await rig.run() == .alreadyDone)
        #expect(rig.store.writes.isEmpty)
        #expect(rig.store.statusOf(2) == .serving && rig.store.statusOf(1) == .validated)
    }

    @Test func anotherWritersChangeStopsTheRolloutAndIsLeftAlone() async throws {
        // Before the rollout's 3rd write (canary 50%), someone sets the share back to 0 by hand.
        let once = Once()
        let rig = Rig(onWrite: { n, store in
            if n == 3 && once.first() { store.overwrite { $0.canaryPercent = 0; $0.reason = "operator" } }
        })
        do {
            _ = try await rig.run()
            Issue.record("no error")
        } catch let e as RolloutError {
            #expect(e.kind == .labelsChanged)
            #expect(e.message.contains("now stable v1, canary v2 at 0%"), "\(e.message)")
        }
        let left = rig.store.current("m")
        #expect(left.canary == 2 && left.canaryPercent == 0 && left.reason == "operator")
        // Run again: it resumes from what it finds (canary v2 at 0%) and finishes.
        let again = try await rig.run()
        #expect(again == .promoted(from: 1), "\(again)\n\(rig.lines.text)")
        let l = rig.store.current("m")
        #expect(l.stable == 2 && l.canary == nil)
    }

    @Test func aConcurrentChangeReportsTheLabelsFound() async throws {
        let rig = Rig(onWrite: { n, store in
            if n == 2 { store.overwrite { $0.canary = nil; $0.canaryPercent = 0 } }
        })
        do {
            _ = try await rig.run()
            Issue.record("no error")
        } catch let e as RolloutError {
            #expect(e.kind == .labelsChanged)
            #expect(e.message.contains("now stable v1, no canary"), "\(e.message)")
        }
        #expect(rig.store.current("m").canary == nil)
        #expect(rig.store.statusOf(2) == .validated)
    }

    @Test func anotherCanaryIsRefusedUnlessForced() async throws {
        let store = FakeLabelStore(versions: [1, 2, 3], labels: ModelLabels(stable: 1, canary: 3, canaryPercent: 25, generation: 4))
        let fleet = FakeFleet(replicas: 2, store: store, readyVersions: [1, 3], behaviours: [:])
        var o = RolloutOptions(model: "m", version: 2)
        o.steps = [50, 100]
        o.bake = .seconds(5)
        o.gates.minRequests = 10
        var c = RolloutController(options: o, store: store, replicas: fleet.replicas, clock: FakeClock(fleet: fleet), report: { _ in })
        do {
            _ = try await c.run()
            Issue.record("not refused")
        } catch let e as RolloutError {
            #expect(e.kind == .refused && e.message.contains("another canary, v3 at 25%"))
        }
        #expect(store.writes.isEmpty)
        o.force = true
        c = RolloutController(options: o, store: store, replicas: fleet.replicas, clock: FakeClock(fleet: fleet), report: { _ in })
        #expect(try await c.run() == .promoted(from: 1))
    }

    /// The verdict is recorded before the canary is cleared: a rollback interrupted in between
    /// is finished by the next run, never resumed as a rollout.
    @Test func aRollbackInterruptedAfterItsVerdictIsFinishedNotResumed() async throws {
        let rig = Rig(labels: ModelLabels(stable: 1, canary: 2, canaryPercent: 50, generation: 4),
                      statuses: [1: .serving, 2: .rolledBack])
        rig.fleet.tick(0.25)
        guard case .rolledBack = try await rig.run() else { Issue.record("not finished as a rollback"); return }
        #expect(rig.store.writes.map(\.canaryPercent) == [0])
        #expect(rig.store.current("m").canary == nil && rig.store.current("m").stable == 1)
        #expect(rig.store.statusOf(2) == .rolledBack)
        #expect(rig.lines.text.contains("finishing the interrupted rollback"))
    }

    /// A registry that is briefly unreachable during a rollback does not leave the bad canary
    /// with its share: the verdict and the label write are retried.
    @Test func anUnreachableStoreDuringARollbackIsRetried() async throws {
        let rig = Rig(canary: VersionBehaviour(errorRate: 0.05))
        rig.store.state.withLock { $0.unavailableAttempts = [3, 4, 5] }  // the rollback's write, three times
        guard case .rolledBack = try await rig.run() else { Issue.record("not rolled back"); return }
        #expect(rig.store.current("m").canary == nil)
        #expect(rig.store.writes.map(\.canaryPercent) == [0, 10, 0])
        #expect(rig.lines.text.contains("retrying"))
        #expect(rig.store.statusOf(2) == .rolledBack)
    }

    /// A canary that takes other inputs would fail every request with INVALID_ARGUMENT, which
    /// the evidence does not count: it is stopped before any traffic moves.
    @Test func aCanaryWithOtherInputsStopsBeforeAnyTrafficMoves() async throws {
        let rig = Rig()
        rig.fleet.signatures.withLock {
            $0[1] = [TensorMetadata(name: "input", datatype: "FP32", shape: [-1, 30])]
            $0[2] = [TensorMetadata(name: "input", datatype: "FP32", shape: [-1, 31])]
        }
        guard case .rolledBack(let reason) = try await rig.run() else { Issue.record("not stopped"); return }
        #expect(reason.contains("takes other inputs") && reason.contains("[-1, 31]"), "\(reason)")
        #expect(rig.neverMovedTraffic)
        // The same inputs (in another order) pass.
        let same = Rig()
        same.fleet.signatures.withLock {
            $0[1] = [TensorMetadata(name: "a", datatype: "FP32", shape: [-1]), TensorMetadata(name: "b", datatype: "INT64", shape: [-1])]
            $0[2] = [TensorMetadata(name: "b", datatype: "INT64", shape: [-1]), TensorMetadata(name: "a", datatype: "FP32", shape: [-1])]
        }
        #expect(try await same.run() == .promoted(from: 1))
    }

    @Test func aVersionRolledBackBeforeIsRefusedUnlessForced() async throws {
        var rig = Rig(statuses: [1: .serving, 2: .rolledBack])
        await #expect(throws: RolloutError.self) { try await rig.run() }
        #expect(rig.store.writes.isEmpty)
        rig.options.force = true
        #expect(try await rig.run() == .promoted(from: 1))
        #expect(rig.store.statusOf(2) == .serving)
    }

    /// Retried with --force and interrupted, a version rolled back before resumes as a rollout
    /// (its status was reset when the retry began), not as a rollback to finish.
    @Test func aForcedRetryInterruptedResumesAsARollout() async throws {
        var rig = Rig(statuses: [1: .serving, 2: .rolledBack])
        rig.options.force = true
        let (c, _) = rig.controller(interruptAt: 2)
        await #expect(throws: (any Error).self) { try await c.run() }
        #expect(rig.store.statusOf(2) == .validated)
        #expect(rig.store.current("m").canary == 2)
        rig.options.force = false
        #expect(try await rig.run() == .promoted(from: 1))
    }

    @Test func withoutAStableLabelStableIsWhatTheReplicasServe() async throws {
        let rig = Rig(labels: ModelLabels(), statuses: [:])
        #expect(try await rig.run() == .promoted(from: 1))
        #expect(rig.store.writes.first?.stable == 1 && rig.store.writes.first?.canary == 2)
        #expect(rig.store.statusOf(2) == .serving)
    }

    @Test func unreachableReplicaBeforeStartChangesNothing() async throws {
        let rig = Rig()
        rig.fleet.setUnreachable(1, true)
        do {
            _ = try await rig.run()
            Issue.record("no error")
        } catch let e as RolloutError {
            #expect(e.kind == .unreachable && e.message.contains("r2"))
        }
        #expect(rig.store.writes.isEmpty)
    }

    @Test func aReplicaLostDuringABakeRollsBack() async throws {
        let rig = Rig()
        let (c, _) = rig.controller()
        // Lose r1 for good once the canary is at 10%.
        let fleet = rig.fleet
        let store = rig.store
        let watcher = Task {
            while store.current("m").canaryPercent < 10 { try await Task.sleep(for: .milliseconds(1)) }
            fleet.setUnreachable(0, true)
        }
        let outcome = try await c.run()
        watcher.cancel()
        guard case .rolledBack(let reason) = outcome else { Issue.record("not rolled back: \(outcome)"); return }
        #expect(reason.contains("r1"), "\(reason)")
        #expect(store.current("m").canary == nil)
    }

    @Test func dryRunChangesNothing() async throws {
        let rig = Rig()
        let plan = try await rig.controller().0.plan()
        #expect(plan.contains { $0.hasPrefix("plan: write canary=v2 at 0%") })
        #expect(plan.contains { $0.contains("r1: applies stable v1, no canary") })
        #expect(plan.last == "dry run: nothing changed")
        #expect(rig.store.writes.isEmpty)
    }

    func expectRolledBack(_ rig: Rig, reasonContains: String) throws {
        let l = rig.store.current("m")
        #expect(l.stable == 1 && l.canary == nil && l.canaryPercent == 0)
        #expect(rig.store.statusOf(2) == .rolledBack)
        #expect(rig.store.reasonOf(2)?.contains(reasonContains) == true, "\(rig.store.reasonOf(2) ?? "no reason")")
        #expect(rig.store.statusOf(1) == .serving)
        #expect(rig.lines.text.contains("rolled back: stable v1, no canary"))
    }
}

/// The repository store: the same rollout against a real repository folder (ModelRegistry's
/// labels.json and metadata.json).
@Suite struct RepositoryLabelStoreTests {
    @Test func rolloutPromotesAndRollsBackInARepository() async throws {
        let dir = try TemporaryDirectory()
        for bias in [1, 2, 3] as [Float] {
            _ = try ModelPublisher.publish(onnx: registryTestModel(bias: bias), repository: dir.url, name: "m", lineage: sampleLineage())
        }
        let store = RepositoryLabelStore(root: dir.url)
        let registry = ModelRegistry(repository: dir.url)
        try registry.setStatus(.serving, model: "m", version: 1)
        let l = try await store.setLabels(model: "m", ModelLabels(stable: 1), force: false)
        #expect(l.generation == 1)
        // A stale generation is a conflict.
        await #expect(throws: LabelStoreError.self) { try await store.setLabels(model: "m", ModelLabels(stable: 2), force: false) }

        // The fleet must follow the repository's labels: a mirror store that reads through.
        let mirror = MirrorStore(inner: store)
        let followers = FakeFleet(replicas: 2, store: mirror.view, readyVersions: [1], behaviours: [3: VersionBehaviour(errorRate: 0.5)])
        mirror.sync()
        followers.tick(0.25)
        var o = RolloutOptions(model: "m", version: 2)
        o.steps = [50, 100]
        o.bake = .seconds(5)
        o.gates.minRequests = 10
        let clock = MirrorClock(mirror: mirror, inner: FakeClock(fleet: followers))
        let c2 = RolloutController(options: o, store: mirror, replicas: followers.replicas, clock: clock, report: { _ in })
        #expect(try await c2.run() == .promoted(from: 1))
        var labels = try registry.labels(of: "m")
        #expect(labels.stable == 2 && labels.canary == nil && labels.previousStable == 1)
        #expect(try registry.lineage(of: "m", version: 2).status == .serving)
        #expect(try registry.lineage(of: "m", version: 1).status == .validated)

        o.version = 3
        let c3 = RolloutController(options: o, store: mirror, replicas: followers.replicas, clock: clock, report: { _ in })
        guard case .rolledBack = try await c3.run() else { Issue.record("v3 not rolled back"); return }
        labels = try registry.labels(of: "m")
        #expect(labels.stable == 2 && labels.canary == nil)
        let v3 = try registry.lineage(of: "m", version: 3)
        #expect(v3.status == .rolledBack)
        #expect(v3.statusHistory.last?.reason?.contains("error rate 50.00%") == true)
    }
}

/// A label store writing through to another (the repository) and mirroring what it holds into a
/// `FakeLabelStore` the simulated fleet follows.
final class MirrorStore: LabelStore {
    let inner: RepositoryLabelStore
    let view = FakeLabelStore(versions: [1, 2, 3])
    init(inner: RepositoryLabelStore) { self.inner = inner }
    var description: String { inner.description }
    func sync() {
        let l = (try? inner.registry.labels(of: "m")) ?? ModelLabels()
        view.state.withLock { $0.labels["m"] = l }
    }
    func labels(of model: String) async throws -> ModelLabels { try await inner.labels(of: model) }
    func setLabels(model: String, _ labels: ModelLabels, force: Bool) async throws -> ModelLabels {
        defer { sync() }
        return try await inner.setLabels(model: model, labels, force: force)
    }
    func setStatus(model: String, version: Int, _ status: Lineage.Status, reason: String) async throws {
        try await inner.setStatus(model: model, version: version, status, reason: reason)
    }
    func status(model: String, version: Int) async throws -> (status: Lineage.Status, reason: String?)? {
        try await inner.status(model: model, version: version)
    }
}

struct MirrorClock: RolloutClock {
    let mirror: MirrorStore
    let inner: FakeClock
    func now() -> Duration { inner.now() }
    func sleep(for duration: Duration) async throws { mirror.sync(); try await inner.sleep(for: duration) }
}

final class Once: Sendable {
    private let done = Mutex(false)
    /// True the first time only.
    func first() -> Bool { done.withLock { d in defer { d = true }; return !d } }
}
