import Histogram
import SwerveClient
import func SwerveServing.monotonicNanos
import SwerveTransport
import Synchronization
import SwerveStatus

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a load phase runs.
struct LoadPlan: Sendable {
    /// Closed loop: the number of workers sending back to back. Open loop: the most requests
    /// in flight at once.
    var workers: Int
    var durationNanos: UInt64
    var maxRequests: Int
    /// Requests per second for an open loop; nil for a closed loop.
    var rate: Double?
    /// Open loop: how many due-but-unsent requests may queue before the oldest are dropped.
    var maxBacklog: Int
    var timeout: Duration?
    var progress: Bool
    /// The number of this phase's first request (request numbers pick inputs), so that the
    /// measured phase continues the warm-up's input stream instead of repeating it.
    var firstRequest = 0
    /// `--replay-timing`: each request's send time from the phase's start (ns), as recorded.
    var replayNanos: [UInt64]? = nil
}

/// Latency histograms: 1 µs to 100 s at three significant digits.
func makeLatencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000, numberOfSignificantValueDigits: .three)
}

/// One second's latencies, coarsely: 8 buckets per doubling from 1 µs (each bucket ~9% wide), for
/// the per-second timeline (p99 each second) at 2 KiB a second per worker.
struct SecondLatencies: Sendable {
    static let bucketCount = 256
    var counts = [UInt32](repeating: 0, count: bucketCount)
    var ok: UInt32 = 0
    var errors: UInt32 = 0

    static func bucket(_ micros: UInt64) -> Int { min(bucketCount - 1, Int(log2(Double(max(1, micros))) * 8)) }

    /// The upper bound of the bucket holding quantile `q` (µs); nil without a success.
    func quantile(_ q: Double) -> Double? {
        guard ok > 0 else { return nil }
        let rank = UInt32((Double(ok) * q).rounded(.up))
        var seen: UInt32 = 0
        for (i, c) in counts.enumerated() {
            seen += c
            if seen >= max(1, rank) { return pow(2, Double(i + 1) / 8) }
        }
        return pow(2, Double(Self.bucketCount) / 8)
    }

    mutating func add(_ o: SecondLatencies) {
        for i in 0..<Self.bucketCount { counts[i] &+= o.counts[i] }
        ok &+= o.ok
        errors &+= o.errors
    }
}

/// What one worker saw. Merged after the phase, so recording needs no locks.
struct WorkerTally: Sendable {
    /// With several models: latencies and errors per model (by position in `--model`).
    var perModel: [Histogram<UInt64>] = []
    var perModelErrors: [Int] = []

    mutating func recordModel(_ k: Int, nanos: UInt64?) {
        while perModel.count <= k { perModel.append(makeLatencyHistogram()); perModelErrors.append(0) }
        if let nanos { _ = perModel[k].record(min(max(nanos / 1000, 1), 100_000_000)) } else { perModelErrors[k] += 1 }
    }

    /// When the phase started (monotonic ns), for `seconds`.
    var origin: UInt64 = 0
    /// Per second of the phase (by completion time), at most `maxSeconds`.
    var seconds: [SecondLatencies] = []
    static let maxSeconds = 3600

    /// Counts a completion in its second of the phase: a success with its latency, or an error.
    @inline(__always)
    mutating func recordSecond(end: UInt64, latencyNanos: UInt64?) {
        guard end >= origin else { return }
        let s = Int((end - origin) / 1_000_000_000)
        guard s < Self.maxSeconds else { return }
        while seconds.count <= s { seconds.append(SecondLatencies()) }
        if let latencyNanos {
            seconds[s].counts[SecondLatencies.bucket(latencyNanos / 1000)] &+= 1
            seconds[s].ok &+= 1
        } else {
            seconds[s].errors &+= 1
        }
    }

    /// Open loop: from the intended send time; closed loop: from the send.
    var latency = makeLatencyHistogram()
    /// From the actual send (open loop only; equal to `latency` in a closed loop).
    var service = makeLatencyHistogram()
    var ok = 0
    var errors: [GRPCStatusCode: Int] = [:]
    var firstErrorMessage: [GRPCStatusCode: String] = [:]

    @inline(__always)
    mutating func record(_ histogram: WritableKeyPath<WorkerTally, Histogram<UInt64>>, nanos: UInt64) {
        _ = self[keyPath: histogram].record(min(max(nanos / 1000, 1), 100_000_000))
    }

    mutating func fail(_ error: any Error) {
        let status = error as? GRPCStatus ?? GRPCStatus(.unknown, "\(error)")
        errors[status.code, default: 0] += 1
        if firstErrorMessage[status.code] == nil { firstErrorMessage[status.code] = status.message }
    }

    mutating func merge(_ other: WorkerTally) {
        for (k, h) in other.perModel.enumerated() {
            while perModel.count <= k { perModel.append(makeLatencyHistogram()); perModelErrors.append(0) }
            perModel[k].add(h)
            perModelErrors[k] += other.perModelErrors[k]
        }
        while seconds.count < other.seconds.count { seconds.append(SecondLatencies()) }
        for (i, x) in other.seconds.enumerated() { seconds[i].add(x) }
        latency.add(other.latency)
        service.add(other.service)
        ok += other.ok
        errors.merge(other.errors, uniquingKeysWith: +)
        firstErrorMessage.merge(other.firstErrorMessage) { a, _ in a }
    }
}

/// One point of the per-second progress record.
struct ProgressPoint: Sendable, Codable {
    var elapsedSeconds: Double
    var requests: Int
    var errors: Int
    var rps: Double
    /// That second's p99 latency (µs, to ~9%) and errors, from the requests completed in it.
    var p99Micros: Double? = nil
    var errorsInSecond: Int? = nil
}

/// The outcome of a phase.
struct PhaseResult: Sendable {
    var tally: WorkerTally
    var elapsedNanos: UInt64
    var dropped: Int
    var timeline: [ProgressPoint]
}

/// Counters the progress line reads while workers run.
final class LoadCounters: Sendable {
    let claimed = Atomic<Int>(0)
    let completed = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
}

/// The open-loop timetable: request i is due at start + i/rate. A worker claims the next due
/// slot; when more than `maxBacklog` slots are overdue, the oldest are dropped (and counted)
/// so that a saturated server does not grow the queue without bound.
final class OpenLoopSchedule: Sendable {
    let start: UInt64
    let intervalNanos: Double
    let deadline: UInt64
    let maxRequests: Int
    let maxBacklog: Int
    private let state = Mutex<(next: Int, dropped: Int)>((0, 0))

    /// `--replay-timing`: request i is due at start + offsets[i] instead (the file's recorded
    /// times), and the schedule ends with the file.
    let offsets: [UInt64]?

    init(start: UInt64, rate: Double, deadline: UInt64, maxRequests: Int, maxBacklog: Int) {
        self.start = start
        self.intervalNanos = 1e9 / rate
        self.deadline = deadline
        self.maxRequests = maxRequests
        self.maxBacklog = maxBacklog
        self.offsets = nil
    }

    init(start: UInt64, offsets: [UInt64], deadline: UInt64, maxRequests: Int, maxBacklog: Int) {
        self.start = start
        let span = Double(offsets.last ?? 0)
        self.intervalNanos = offsets.count > 1 ? max(1, span / Double(offsets.count - 1)) : 1e9
        self.deadline = deadline
        self.maxRequests = min(maxRequests, offsets.count)
        self.maxBacklog = maxBacklog
        self.offsets = offsets
    }

    /// How many requests are due by `elapsed` ns.
    private func due(_ elapsed: UInt64) -> Int {
        guard let offsets else { return Int(Double(elapsed) / intervalNanos) + 1 }
        var lo = 0, hi = offsets.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if offsets[mid] <= elapsed { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    private func intended(_ i: Int) -> UInt64 {
        if let offsets { return start + offsets[i] }
        return start + UInt64(Double(i) * intervalNanos)
    }

    /// The next slot and its intended send time, or nil when the schedule is over. Nothing is
    /// sent after the deadline: slots still queued then count as dropped.
    func claim(now: UInt64) -> (index: Int, intended: UInt64)? {
        guard now < deadline else { return nil }
        return state.withLock { s in
            if now > start {
                let backlog = due(now - start) - s.next
                if backlog > maxBacklog {
                    let skip = min(backlog - maxBacklog, maxRequests - s.next)
                    if skip > 0 {
                        s.dropped += skip
                        s.next += skip
                    }
                }
            }
            guard s.next < maxRequests else { return nil }
            let at = intended(s.next)
            guard at < deadline else { return nil }
            defer { s.next += 1 }
            return (s.next, at)
        }
    }

    /// Slots dropped for backlog so far.
    func droppedForBacklog() -> Int { state.withLock { $0.dropped } }

    /// Slots dropped for backlog, plus slots due before the deadline that no worker got to.
    func dropped() -> Int {
        state.withLock { s in
            let scheduled = offsets != nil ? min(maxRequests, due(deadline - start - 1))
                : min(maxRequests, Int((Double(deadline - start) / intervalNanos).rounded(.up)))
            return s.dropped + max(0, scheduled - s.next)
        }
    }
}

/// Runs one load phase against `client` and returns what the workers saw.
func runLoadPhase(client: SwerveClient, source: BenchRequestSource, plan: LoadPlan) async -> PhaseResult {
    let counters = LoadCounters()
    let start = monotonicNanos()
    let deadline = start + plan.durationNanos
    let schedule = plan.replayNanos.map {
        OpenLoopSchedule(start: start, offsets: $0, deadline: deadline, maxRequests: plan.maxRequests, maxBacklog: plan.maxBacklog)
    } ?? plan.rate.map {
        OpenLoopSchedule(start: start, rate: $0, deadline: deadline, maxRequests: plan.maxRequests, maxBacklog: plan.maxBacklog)
    }
    let reporter = Task { () -> [ProgressPoint] in
        await reportProgress(counters: counters, schedule: schedule, start: start, print: plan.progress)
    }
    let tally = await withTaskGroup(of: WorkerTally.self) { group in
        for _ in 0..<plan.workers {
            group.addTask {
                if let schedule {
                    await openLoopWorker(
                        client: client, source: source, schedule: schedule, counters: counters, timeout: plan.timeout,
                        firstRequest: plan.firstRequest)
                } else {
                    await closedLoopWorker(
                        client: client, source: source, deadline: deadline, maxRequests: plan.maxRequests,
                        counters: counters, timeout: plan.timeout, firstRequest: plan.firstRequest, origin: start)
                }
            }
        }
        var total = WorkerTally()
        for await tally in group { total.merge(tally) }
        return total
    }
    let elapsed = monotonicNanos() - start
    reporter.cancel()
    var timeline = await reporter.value
    // Each second's p99 and errors, by completion time (the reporter's point k covers second k).
    for k in timeline.indices where k < tally.seconds.count {
        timeline[k].p99Micros = tally.seconds[k].quantile(0.99)
        timeline[k].errorsInSecond = Int(tally.seconds[k].errors)
    }
    return PhaseResult(tally: tally, elapsedNanos: elapsed, dropped: schedule?.dropped() ?? 0, timeline: timeline)
}

private func closedLoopWorker(
    client: SwerveClient, source: BenchRequestSource, deadline: UInt64, maxRequests: Int, counters: LoadCounters,
    timeout: Duration?, firstRequest: Int, origin: UInt64
) async -> WorkerTally {
    var tally = WorkerTally()
    tally.origin = origin
    while true {
        let n = counters.claimed.wrappingAdd(1, ordering: .relaxed).oldValue
        if n >= maxRequests { break }
        let sent = monotonicNanos()
        if sent >= deadline { break }
        let request = source.request(firstRequest &+ n)
        do {
            _ = try await client.modelInfer(serialized: request, timeout: timeout)
            let end = monotonicNanos()
            let nanos = end - sent
            tally.record(\.latency, nanos: nanos)
            tally.record(\.service, nanos: nanos)
            tally.recordSecond(end: end, latencyNanos: nanos)
            if let k = source.mixIndex(firstRequest &+ n) { tally.recordModel(k, nanos: nanos) }
            tally.ok += 1
        } catch {
            tally.recordSecond(end: monotonicNanos(), latencyNanos: nil)
            if let k = source.mixIndex(firstRequest &+ n) { tally.recordModel(k, nanos: nil) }
            tally.fail(error)
            counters.errors.wrappingAdd(1, ordering: .relaxed)
        }
        counters.completed.wrappingAdd(1, ordering: .relaxed)
    }
    return tally
}

private func openLoopWorker(
    client: SwerveClient, source: BenchRequestSource, schedule: OpenLoopSchedule, counters: LoadCounters, timeout: Duration?,
    firstRequest: Int
) async -> WorkerTally {
    var tally = WorkerTally()
    tally.origin = schedule.start
    while let (n, intended) = schedule.claim(now: monotonicNanos()) {
        var now = monotonicNanos()
        if intended > now {
            try? await Task.sleep(for: .nanoseconds(Int64(intended - now)))
            now = monotonicNanos()
        }
        let sent = now
        let request = source.request(firstRequest &+ n)
        do {
            _ = try await client.modelInfer(serialized: request, timeout: timeout)
            let end = monotonicNanos()
            // From the intended send time: waiting for a free worker (the server falling
            // behind) counts, as it would for a real client sending on its own schedule.
            tally.record(\.latency, nanos: end - min(intended, sent))
            tally.record(\.service, nanos: end - sent)
            tally.recordSecond(end: end, latencyNanos: end - min(intended, sent))
            if let k = source.mixIndex(firstRequest &+ n) { tally.recordModel(k, nanos: end - min(intended, sent)) }
            tally.ok += 1
        } catch {
            tally.recordSecond(end: monotonicNanos(), latencyNanos: nil)
            if let k = source.mixIndex(firstRequest &+ n) { tally.recordModel(k, nanos: nil) }
            tally.fail(error)
            counters.errors.wrappingAdd(1, ordering: .relaxed)
        }
        counters.completed.wrappingAdd(1, ordering: .relaxed)
    }
    return tally
}

/// Prints a line each second (when asked) and keeps the per-second record, until cancelled.
private func reportProgress(counters: LoadCounters, schedule: OpenLoopSchedule?, start: UInt64, print shouldPrint: Bool) async -> [ProgressPoint] {
    var timeline: [ProgressPoint] = []
    var lastCompleted = 0
    var lastTime = start
    var tick: UInt64 = 1
    while !Task.isCancelled {
        let target = start + tick * 1_000_000_000
        let now = monotonicNanos()
        if target > now {
            do { try await Task.sleep(for: .nanoseconds(Int64(target - now))) } catch { break }
        }
        tick += 1
        let time = monotonicNanos()
        let completed = counters.completed.load(ordering: .relaxed)
        let errors = counters.errors.load(ordering: .relaxed)
        let rps = Double(completed - lastCompleted) / (Double(time - lastTime) / 1e9)
        let elapsed = Double(time - start) / 1e9
        timeline.append(ProgressPoint(elapsedSeconds: elapsed, requests: completed, errors: errors, rps: rps))
        if shouldPrint {
            var line = "[\(fixed(elapsed, 1).leftPadded(6))s] requests \(String(completed).leftPadded(9))  rps \(fixed(rps, 0).leftPadded(8))  errors \(errors)"
            if let schedule { line += "  dropped \(schedule.droppedForBacklog())" }
            print(line)
        }
        lastCompleted = completed
        lastTime = time
    }
    // The phase ended (this task was cancelled) part-way into a second: that last stretch is a
    // point too, or a run's final second (where a swap or a failure may show) would be missing.
    let time = monotonicNanos()
    if time > lastTime + 100_000_000 {
        let completed = counters.completed.load(ordering: .relaxed)
        timeline.append(ProgressPoint(elapsedSeconds: Double(time - start) / 1e9, requests: completed,
                                      errors: counters.errors.load(ordering: .relaxed),
                                      rps: Double(completed - lastCompleted) / (Double(time - lastTime) / 1e9)))
    }
    return timeline
}

/// `value` with `digits` decimals.
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (abs(value) * scale).rounded()
    let whole = rounded / scale
    let integerPart = Int64(whole.rounded(.down))
    let sign = value < 0 && rounded != 0 ? "-" : ""
    if digits == 0 { return sign + String(integerPart) }
    let fraction = Int64(rounded - Double(integerPart) * scale)
    let fractionText = String(fraction)
    return sign + String(integerPart) + "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
