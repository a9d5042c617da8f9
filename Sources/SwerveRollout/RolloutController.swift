import SwerveProto
import SwerveRepository

/// Time for the controller: the system's in a real rollout, a virtual one in tests.
public protocol RolloutClock: Sendable {
    /// Time since some fixed origin.
    func now() -> Duration
    /// Waits `duration`; throws `CancellationError` when the task is cancelled (an interrupted
    /// rollout stops at its next wait).
    func sleep(for duration: Duration) async throws
}

/// The system's monotonic clock.
public struct SystemRolloutClock: RolloutClock {
    let origin = ContinuousClock.now
    public init() {}
    public func now() -> Duration { ContinuousClock.now - origin }
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

/// What `swerve rollout` was asked to do.
public struct RolloutOptions: Sendable {
    public var model: String
    public var version: Int
    /// Canary shares in percent, ascending, each in (0, 100].
    public var steps: [Double] = [5, 25, 50, 100]
    /// How long each step's window lasts (it is extended up to 4 x when a side has too few requests).
    public var bake: Duration = .seconds(30)
    public var gates = RolloutGates()
    /// How long every replica may take to report the version READY.
    public var readyTimeout: Duration = .seconds(300)
    /// How long every replica may take to apply a label change (its repository poll, or the
    /// registry's stream), and to answer a window's reads.
    public var applyTimeout: Duration = .seconds(60)
    /// Take over another canary, or try a version that was rolled back before.
    public var force = false
    /// How often replicas are asked while waiting.
    public var poll: Duration = .milliseconds(250)

    public init(model: String, version: Int) {
        self.model = model
        self.version = version
    }

    /// Why these options cannot run, or nil.
    public var problem: String? {
        if version <= 0 { return "--version must be a positive version number, not \(version)" }
        if steps.isEmpty { return "--steps needs at least one share" }
        for (i, s) in steps.enumerated() {
            if !(s > 0 && s <= 100) { return "--steps: each share must be within (0, 100], not \(s)" }
            if i > 0 && s <= steps[i - 1] { return "--steps must increase: \(steps[i - 1]) then \(s)" }
        }
        if bake <= .zero { return "--bake must be positive" }
        if readyTimeout <= .zero { return "--ready-timeout must be positive" }
        if applyTimeout <= .zero { return "--apply-timeout must be positive" }
        return gates.problem
    }
}

/// How a rollout ended.
public enum RolloutOutcome: Sendable, Equatable {
    /// The version is stable now (`from`: the stable version it replaced).
    case promoted(from: Int?)
    /// The version was stable already when the rollout started (a finished rollout run again).
    case alreadyDone
    /// A check failed (or the version did not load): the canary label was cleared and the
    /// version marked `rolled_back` with `reason`.
    case rolledBack(reason: String)
}

/// Why a rollout did not start or could not go on (labels left as they are, consistent).
public struct RolloutError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Bad options, or labels the rollout will not touch without `--force`.
        case refused
        /// A replica or the label store could not be reached before anything changed.
        case unreachable
        /// Another writer changed the labels during the rollout.
        case labelsChanged
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// The rollout controller: takes one model version from canary 0% to stable across replicas,
/// step by step, comparing it with the stable version on each step's window, and promotes it or
/// rolls it back by itself.
///
/// Every decision is made from the labels it reads (desired state) and the replicas' evidence,
/// and every change is one compare-and-set write of the labels, so it can be interrupted at any
/// point and run again: it resumes from the labels it finds.
public struct RolloutController: Sendable {
    public let options: RolloutOptions
    public let store: any LabelStore
    public let replicas: [any RolloutReplica]
    public let clock: any RolloutClock
    /// Progress lines (one per step, plus what was decided).
    public let report: @Sendable (String) -> Void

    public init(options: RolloutOptions, store: any LabelStore, replicas: [any RolloutReplica], clock: any RolloutClock = SystemRolloutClock(),
                report: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.store = store
        self.replicas = replicas
        self.clock = clock
        self.report = report
    }

    var model: String { options.model }
    var version: Int { options.version }

    // MARK: - The plan (--dry-run)

    /// What a run would do now, changing nothing.
    public func plan() async throws -> [String] {
        let labels = try await readLabels()
        var out = ["model \(model): \(Self.describe(labels)) in \(store.description)"]
        out.append("replicas: \(replicas.map(\.name).joined(separator: ", "))")
        for r in await replicas.readAll(model: model) {
            if let e = r.error { out.append("  \(r.replica): unreachable (\(e))"); continue }
            let resp = r.response!
            let versions = resp.versions.map { "v\($0.version) \($0.state)\($0.labels.isEmpty ? "" : " [" + $0.labels.joined(separator: ",") + "]")" }
            out.append("  \(r.replica): applies \(Self.describe(resp)); versions: \(versions.joined(separator: ", "))")
        }
        out.append("steps: \(options.steps.map { Self.share($0) }.joined(separator: ", ")), bake \(Self.seconds(options.bake)) each (up to 4 x when a side has fewer than \(options.gates.minRequests) requests)")
        out.append("gates: \(options.gates.summary)")
        out.append("timeouts: ready \(Self.seconds(options.readyTimeout)), apply \(Self.seconds(options.applyTimeout))")
        switch try await decideStart(labels) {
        case .done: out.append("plan: v\(version) is stable already; nothing to do")
        case .refuse(let why): out.append("plan: refuse: \(why)")
        case .begin: out.append("plan: write canary=v\(version) at 0%\(labels.stable == nil ? " and stable = the version the replicas serve now" : ""), wait until every replica has v\(version) READY, then step through \(options.steps.map { Self.share($0) }.joined(separator: ", ")) and promote")
        case .resume(let steps): out.append("plan: resume from canary v\(version) at \(Self.share(labels.canaryPercent)): step through \(steps.map { Self.share($0) }.joined(separator: ", ")) and promote")
        case .finishRollback(let why): out.append("plan: finish the rollback of v\(version) that was interrupted (\(why)): clear the canary")
        }
        out.append("dry run: nothing changed")
        return out
    }

    enum Start { case done, refuse(String), begin, resume([Double]), finishRollback(String) }

    func decideStart(_ labels: ModelLabels) async throws -> Start {
        if labels.stable == version { return .done }
        if let c = labels.canary, c != version, !options.force {
            return .refuse("model \(model) has another canary, v\(c) at \(Self.share(labels.canaryPercent)); let its rollout finish, clear it (swerve label --model \(model) --clear-canary), or pass --force")
        }
        if labels.canary == version {
            // A rollback records its verdict before it clears the canary: one interrupted in
            // between is finished, never resumed.
            if let s = try await store.status(model: model, version: version), s.status == .rolledBack {
                return .finishRollback(s.reason ?? "no reason recorded")
            }
            return .resume(resumeSteps(labels.canaryPercent))
        }
        if !options.force, let s = try await store.status(model: model, version: version) {
            if s.status == .rolledBack { return .refuse("v\(version) was rolled back before (\(s.reason ?? "no reason recorded")); pass --force to try it again") }
            if s.status == .rejected { return .refuse("v\(version) was rejected by its gates") }
        }
        return .begin
    }

    /// The steps still to bake when the canary is at `current`: the step it was in is baked again
    /// (its window was not judged), then the ones above. A share above every step is baked as is.
    func resumeSteps(_ current: Double) -> [Double] {
        let rest = options.steps.filter { $0 >= current }
        return rest.isEmpty && current > 0 ? [current] : rest
    }

    // MARK: - The run

    /// Runs the rollout to its end. Throws ``RolloutError`` when it cannot start or another
    /// writer changed the labels (they are left as they are), `CancellationError` when the task
    /// is cancelled (labels left as they are; run again to resume).
    public func run() async throws -> RolloutOutcome {
        if let why = options.problem { throw RolloutError(.refused, why) }
        var labels = try await readLabels()
        let steps: [Double]
        switch try await decideStart(labels) {
        case .done:
            try await finishPromotion(previous: labels.previousStable)
            report("v\(version) is stable already (\(Self.describe(labels))); nothing to do")
            return .alreadyDone
        case .refuse(let why):
            throw RolloutError(.refused, why)
        case .finishRollback(let why):
            report("finishing the interrupted rollback of v\(version) (\(why))")
            return try await rollBack(labels, reason: why)
        case .resume(let s):
            steps = s
            try await requireReachable()
            report("resuming: \(Self.describe(labels)) (generation \(labels.generation))")
        case .begin:
            let first = try await requireReachable()
            var next = labels
            if next.stable == nil { next.stable = try stableFromReplicas(first) }
            next.canary = version
            next.canaryPercent = 0
            next.reason = "rollout of v\(version): canary at 0% while every replica loads it"
            let hadStable = labels.stable != nil
            if options.force, try await store.status(model: model, version: version)?.status == .rolledBack {
                // Tried again on purpose: no longer rolled back, or a resume would finish a rollback.
                try await store.setStatus(model: model, version: version, .validated, reason: "rollout retried with --force")
            }
            labels = try await write(next, from: labels)
            if !hadStable, let s = labels.stable, try await store.status(model: model, version: s)?.status != .serving {
                // The version the replicas served becomes the stable label: its lineage says so.
                try await store.setStatus(model: model, version: s, .serving, reason: "serving when the rollout of v\(version) began (made the stable label)")
            }
            report("labels: \(Self.describe(labels)) (generation \(labels.generation)); waiting for every replica to have v\(version) READY")
            steps = options.steps
        }
        guard let stable = labels.stable else { throw RolloutError(.refused, "model \(model) has a canary but no stable label") }

        if let why = try await waitReady() {
            return try await rollBack(labels, reason: why)
        }
        report("v\(version) READY on every replica (\(replicas.count))")
        if let why = await signatureMismatch(stable: stable) {
            return try await rollBack(labels, reason: why)
        }

        var baseline: (counts: EvidenceCounts, from: String)?
        for (i, share) in steps.enumerated() {
            if labels.canaryPercent != share {
                var next = labels
                next.canaryPercent = share
                next.reason = "rollout of v\(version): canary at \(Self.share(share))"
                labels = try await write(next, from: labels)
            }
            if let why = try await waitApplied(labels) {
                return try await rollBack(labels, reason: why)
            }
            switch try await bake(share: share, stable: stable, baseline: &baseline) {
            case .pass(let line):
                report("step \(i + 1)/\(steps.count) \(Self.share(share)): \(line) -> pass")
            case .fail(let reason, let line):
                if let line { report("step \(i + 1)/\(steps.count) \(Self.share(share)): \(line) -> FAIL") }
                return try await rollBack(labels, reason: "at \(Self.share(share)): \(reason)")
            }
        }

        var next = labels
        next.stable = version
        next.canary = nil
        next.canaryPercent = 0
        next.reason = "rollout of v\(version) promoted after \(steps.map { Self.share($0) }.joined(separator: ", "))"
        labels = try await write(next, from: labels)
        try await finishPromotion(previous: stable)
        report("promoted: \(Self.describe(labels)) (generation \(labels.generation)); v\(version) serving, v\(stable) validated")
        await waitStable(labels)
        return .promoted(from: stable)
    }

    // MARK: - Steps

    enum Verdict { case pass(String), fail(String, String?) }

    /// One step's window: reads every replica, bakes (longer while a side has too few requests,
    /// up to 4 x), reads again, and compares canary with stable on the difference.
    func bake(share: Double, stable: Int, baseline: inout (counts: EvidenceCounts, from: String)?) async throws -> Verdict {
        let start: [ReplicaReading]
        switch try await readEveryReplica() {
        case .failure(let why): return .fail(why.description, nil)
        case .success(let r): start = r
        }
        let gates = options.gates
        for round in 1...4 {
            try await clock.sleep(for: options.bake)
            let end: [ReplicaReading]
            switch try await readEveryReplica() {
            case .failure(let why): return .fail(why.description, nil)
            case .success(let r): end = r
            }
            let bounds = end[0].response!.latencyBoundsMicros, scoreBounds = end[0].response!.scoreBounds
            if let odd = end.first(where: { $0.response!.latencyBoundsMicros != bounds || $0.response!.scoreBounds != scoreBounds }) {
                return .fail("replicas report different histogram buckets (\(end[0].replica) and \(odd.replica)); their evidence cannot be summed", nil)
            }
            var canary = EvidenceCounts(), stableWindow = EvidenceCounts(), stableLife = EvidenceCounts()
            for (s, e) in zip(start, end) {
                guard let ce = e.evidence(version) else { return .fail("\(e.replica) no longer lists v\(version)", nil) }
                canary.add(.window(start: s.evidence(version).map(EvidenceCounts.init), end: EvidenceCounts(ce)))
                if let se = e.evidence(stable) {
                    stableWindow.add(.window(start: s.evidence(stable).map(EvidenceCounts.init), end: EvidenceCounts(se)))
                    stableLife.add(EvidenceCounts(se))
                }
            }
            var comparison = WindowComparison(canary: canary, stable: stableWindow, latencyBoundsMicros: bounds, scoreBounds: scoreBounds)
            if share >= 100 {
                // Stable takes no traffic now: compare with its last window that had enough
                // requests, or (resumed at 100%) its figures since it loaded.
                if let b = baseline, b.counts.requests >= max(1, gates.minRequests) {
                    comparison.stable = b.counts
                    comparison.stableBaseline = "stable from the \(b.from) window"
                } else {
                    comparison.stable = stableLife
                    comparison.stableBaseline = "stable since it loaded"
                }
            }
            let line = comparison.line(canaryVersion: version, stableVersion: stable)
            if let short = comparison.insufficient(gates) {
                if round < 4 {
                    report("step \(Self.share(share)): \(short) after \(round) x \(Self.seconds(options.bake)), fewer than \(gates.minRequests); baking on (up to 4 x)")
                    continue
                }
                return .fail("insufficient traffic: \(short) in \(round) x \(Self.seconds(options.bake)), fewer than --min-requests \(gates.minRequests) (\(line))", line)
            }
            if share < 100 && stableWindow.requests >= max(1, gates.minRequests) {
                baseline = (stableWindow, Self.share(share))
            }
            let failures = comparison.failures(gates)
            if failures.isEmpty { return .pass(line) }
            return .fail(failures.joined(separator: "; ") + " (\(line))", line)
        }
        return .fail("unreachable", nil)
    }

    /// Every replica's reading, retried until `applyTimeout` while any replica fails to answer.
    func readEveryReplica() async throws -> Result<[ReplicaReading], WindowProblem> {
        let deadline = clock.now() + options.applyTimeout
        while true {
            let r = await replicas.readAll(model: model)
            try Task.checkCancellation()
            if let bad = r.first(where: { $0.error != nil }) {
                if clock.now() >= deadline {
                    return .failure(WindowProblem("\(bad.replica) did not answer RolloutStatistics for \(Self.seconds(options.applyTimeout)): \(bad.error!)"))
                }
                try await clock.sleep(for: options.poll)
                continue
            }
            return .success(r)
        }
    }

    struct WindowProblem: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    // MARK: - Waits

    /// Waits until every replica reports the version READY. Returns why not: a replica that
    /// cannot load it (UNAVAILABLE with a reason), or the ready timeout.
    func waitReady() async throws -> String? {
        let deadline = clock.now() + options.readyTimeout
        while true {
            var waiting: [String] = []
            for r in await replicas.readAll(model: model) {
                if let e = r.error { waiting.append("\(r.replica): unreachable (\(e))"); continue }
                guard let ev = r.evidence(version) else { waiting.append("\(r.replica): v\(version) not listed yet"); continue }
                switch ev.state {
                case "READY": continue
                case "UNAVAILABLE" where !ev.reason.isEmpty:
                    return "\(r.replica) cannot load v\(version): \(ev.reason)"
                default: waiting.append("\(r.replica): v\(version) \(ev.state)\(ev.reason.isEmpty ? "" : " (\(ev.reason))")")
                }
            }
            try Task.checkCancellation()
            if waiting.isEmpty { return nil }
            if clock.now() >= deadline {
                return "v\(version) not READY on every replica after --ready-timeout \(Self.seconds(options.readyTimeout)): \(waiting.joined(separator: "; "))"
            }
            try await clock.sleep(for: options.poll)
        }
    }

    /// Waits until every replica applies `labels` (its labels generation at least theirs, and the
    /// same canary and share). Returns why not after `applyTimeout`; throws when another writer
    /// changed the labels meanwhile.
    func waitApplied(_ labels: ModelLabels) async throws -> String? {
        let deadline = clock.now() + options.applyTimeout
        while true {
            var behind: [String] = []
            for r in await replicas.readAll(model: model) {
                guard let resp = r.response else { behind.append("\(r.replica): unreachable (\(r.error ?? ""))"); continue }
                if !(resp.labelsGeneration >= labels.generation && resp.canary == Int64(version)
                    && abs(resp.canaryPercent - labels.canaryPercent) < 1e-9) {
                    behind.append("\(r.replica): generation \(resp.labelsGeneration), \(Self.describe(resp))")
                }
            }
            try Task.checkCancellation()
            if behind.isEmpty { return nil }
            if clock.now() >= deadline {
                let now = try await readLabels()
                if now.generation != labels.generation { throw changedElsewhere(now) }
                return "replicas did not apply canary v\(version) at \(Self.share(labels.canaryPercent)) (generation \(labels.generation)) within --apply-timeout \(Self.seconds(options.applyTimeout)): \(behind.joined(separator: "; "))"
            }
            try await clock.sleep(for: options.poll)
        }
    }

    /// After a promotion: waits (bounded by `applyTimeout`) until every replica routes unversioned
    /// requests to the new stable version; only reports when some do not yet.
    func waitStable(_ labels: ModelLabels) async {
        let deadline = clock.now() + options.applyTimeout
        while clock.now() < deadline {
            let readings = await replicas.readAll(model: model)
            if readings.allSatisfy({ ($0.response?.stable ?? 0) == Int64(version) && ($0.response?.labelsGeneration ?? 0) >= labels.generation }) {
                report("every replica routes to v\(version) now")
                return
            }
            do { try await clock.sleep(for: options.poll) } catch { return }
        }
        report("warning: not every replica applied the promotion within \(Self.seconds(options.applyTimeout)) (they converge on the labels by themselves)")
    }

    // MARK: - Labels and lineage

    func readLabels() async throws -> ModelLabels {
        do {
            return try await store.labels(of: model)
        } catch let e as LabelStoreError {
            throw RolloutError(e.kind == .invalid ? .refused : .unreachable, "reading the labels of \(model) from \(store.description): \(e.message)")
        }
    }

    /// One compare-and-set write; a lost race means another writer moved the labels: stop.
    func write(_ next: ModelLabels, from current: ModelLabels) async throws -> ModelLabels {
        do {
            return try await store.setLabels(model: model, next, force: false)
        } catch let e as LabelStoreError where e.kind == .conflict {
            throw changedElsewhere((try? await store.labels(of: model)) ?? current)
        } catch let e as LabelStoreError {
            throw RolloutError(e.kind == .invalid ? .refused : .unreachable, "writing the labels of \(model) to \(store.description): \(e.message)")
        }
    }

    func changedElsewhere(_ now: ModelLabels) -> RolloutError {
        RolloutError(.labelsChanged, "the labels of \(model) were changed by another writer (now \(Self.describe(now)), generation \(now.generation)); the rollout stopped and left them as they are. Run it again to continue from them")
    }

    /// V marked rolled_back with `reason` first (the verdict survives a crash: a rerun finishes
    /// the rollback instead of resuming it), then the canary share 0 and label cleared in one
    /// write (retried against a concurrent change as long as the canary is still this version).
    /// A store that cannot be reached is retried for 2 x --apply-timeout: a bad canary must not be
    /// left with its share because the registry blinked.
    func rollBack(_ labels: ModelLabels, reason: String) async throws -> RolloutOutcome {
        report("rolling back v\(version): \(reason)")
        try await retryingUnavailable("marking v\(version) rolled_back") {
            try await store.setStatus(model: model, version: version, .rolledBack, reason: reason)
        }
        var current = labels
        for _ in 0..<5 where current.canary == version {
            var next = current
            next.canary = nil
            next.canaryPercent = 0
            next.reason = "rollout of v\(version) rolled back: \(reason)"
            do {
                current = try await retryingUnavailable("clearing the canary label") {
                    try await store.setLabels(model: model, next, force: false)
                }
                break
            } catch let e as LabelStoreError where e.kind == .conflict {
                current = try await retryingUnavailable("reading the labels") { try await store.labels(of: model) }
            }
        }
        if current.canary == version {
            throw RolloutError(.labelsChanged, "could not clear the canary label of \(model): the labels keep changing (\(Self.describe(current))); v\(version) is marked rolled_back: run the rollout again to finish the rollback")
        }
        report("rolled back: \(Self.describe(current)) (generation \(current.generation)); v\(version) marked rolled_back")
        return .rolledBack(reason: reason)
    }

    /// Runs `body`, retrying it while the store answers `unavailable`, for up to 2 x the apply
    /// timeout (then the last error is thrown, saying the rollback is incomplete).
    func retryingUnavailable<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        let deadline = clock.now() + options.applyTimeout * 2
        var wait = Duration.milliseconds(500)
        while true {
            do {
                return try await body()
            } catch let e as LabelStoreError where e.kind == .unavailable {
                if clock.now() >= deadline {
                    throw RolloutError(.unreachable, "rollback of v\(version) incomplete: \(what) failed: \(e.message); run the rollout again to finish it")
                }
                report("rollback: \(what) failed (\(e.message)); retrying")
                try await clock.sleep(for: wait)
                wait = min(wait * 2, .seconds(5))
            }
        }
    }

    /// The version `serving`, the version it replaced `validated` (when it was `serving`):
    /// idempotent, so a rollout interrupted between the label write and these completes them.
    func finishPromotion(previous: Int?) async throws {
        if try await store.status(model: model, version: version)?.status != .serving {
            try await store.setStatus(model: model, version: version, .serving, reason: "promoted by rollout")
        }
        if let previous, previous != version, try await store.status(model: model, version: previous)?.status == .serving {
            try await store.setStatus(model: model, version: previous, .validated, reason: "replaced by v\(version) (rollout)")
        }
    }

    /// Why the canary cannot take stable's traffic whatever its figures: it takes other inputs
    /// (names, datatypes or shapes, from the first replica's ModelMetadata). Its requests would
    /// fail with INVALID_ARGUMENT, which the evidence does not count (a client's error says
    /// nothing of a version), so this is checked before any traffic moves. nil when they match
    /// or a replica cannot say.
    func signatureMismatch(stable: Int) async -> String? {
        guard let replica = replicas.first,
              let canaryInputs = try? await replica.inputSignature(model: model, version: version),
              let stableInputs = try? await replica.inputSignature(model: model, version: stable) else { return nil }
        func describe(_ t: [TensorMetadata]) -> String {
            t.map { "\($0.name) \($0.datatype) \($0.shape)" }.joined(separator: ", ")
        }
        let key = { (t: [TensorMetadata]) in t.sorted { $0.name < $1.name } }
        guard key(canaryInputs) != key(stableInputs) else { return nil }
        return "v\(version) takes other inputs than stable v\(stable) (\(describe(canaryInputs)) vs \(describe(stableInputs))): its requests would fail"
    }

    // MARK: - Replicas

    /// Reads every replica once; any that does not answer stops the rollout before it changes
    /// anything.
    @discardableResult
    func requireReachable() async throws -> [ReplicaReading] {
        let r = await replicas.readAll(model: model)
        let bad = r.filter { $0.error != nil }
        if !bad.isEmpty {
            throw RolloutError(.unreachable, "replicas did not answer RolloutStatistics (nothing changed): " + bad.map { "\($0.replica): \($0.error!)" }.joined(separator: "; "))
        }
        return r
    }

    /// The version the replicas answer unversioned requests with now: the stable label they
    /// apply, else their highest READY version other than the canary. They must agree.
    func stableFromReplicas(_ readings: [ReplicaReading]) throws -> Int {
        var answers: [String: Int] = [:]
        for r in readings {
            let resp = r.response!
            var v = Int(resp.stable)
            if v <= 0 {
                v = resp.versions.filter { $0.state == "READY" }.compactMap { Int($0.version) }.filter { $0 != version }.max() ?? 0
            }
            answers[r.replica] = v
        }
        let distinct = Set(answers.values)
        guard distinct.count == 1, let v = distinct.first, v > 0 else {
            if distinct == [0] { throw RolloutError(.refused, "no stable version to compare v\(version) with: the replicas serve no other version of \(model). For a first version set it by hand: swerve label --model \(model) stable=\(version)") }
            throw RolloutError(.refused, "model \(model) has no stable label and the replicas serve different versions (\(answers.sorted { $0.key < $1.key }.map { "\($0.key): v\($0.value)" }.joined(separator: ", "))); set it by hand first: swerve label --model \(model) stable=N")
        }
        return v
    }

    // MARK: - Text

    /// "stable v1, canary v2 at 25%" / "stable v1, no canary" / "no labels".
    public static func describe(_ l: ModelLabels) -> String {
        describe(stable: l.stable ?? 0, canary: l.canary ?? 0, percent: l.canaryPercent)
    }

    static func describe(_ r: RolloutStatisticsResponse) -> String {
        describe(stable: Int(r.stable), canary: Int(r.canary), percent: r.canaryPercent)
    }

    static func describe(stable: Int, canary: Int, percent: Double) -> String {
        if stable <= 0 && canary <= 0 { return "no labels" }
        let s = stable > 0 ? "stable v\(stable)" : "no stable"
        return s + (canary > 0 ? ", canary v\(canary) at \(share(percent))" : ", no canary")
    }

    static func share(_ p: Double) -> String {
        p == p.rounded() ? "\(Int(p))%" : "\(p)%"
    }

    static func seconds(_ d: Duration) -> String {
        let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        return s == s.rounded() ? "\(Int(s))s" : "\(s)s"
    }
}
