import Atomics
import Synchronization

/// `swerve_request_duration_seconds{model,version}`: a Prometheus histogram recorded with two
/// relaxed atomic additions and no lock. It was swift-prometheus's `Histogram<Duration>` (a
/// Timer), which takes a lock and compares the value with all 15 bounds as 128-bit Durations on
/// every request: about 1% of a one-row request's CPU on the computed path. The text it emits is
/// the same, bounds and label order included (`MetricsEndpoint` appends it to the registry's).
/// Sendable because its cells are only read and written atomically.
public final class LatencyHistogram: @unchecked Sendable {
    public static let metricName = "swerve_request_duration_seconds"
    /// Upper bounds in nanoseconds: 50 µs to 5 s.
    public static let boundsNs: [UInt64] = [
        50_000, 100_000, 250_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 25_000_000,
        50_000_000, 100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 5_000_000_000]

    /// `model="…",version="…"`, escaped as the exposition format asks.
    let renderedLabels: [UInt8]
    /// Per bucket (not cumulative; the last is above every bound), then the sum in nanoseconds.
    private let cells: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>
    private static var cellCount: Int { boundsNs.count + 2 }
    private var sumIndex: Int { Self.boundsNs.count + 1 }

    init(model: String, version: String) {
        var labels: [UInt8] = []
        for (i, (key, value)) in [("model", model), ("version", version)].enumerated() {
            if i > 0 { labels.append(UInt8(ascii: ",")) }
            labels.append(contentsOf: key.utf8)
            labels.append(contentsOf: #"=""#.utf8)
            for b in value.utf8 {
                switch b {
                case UInt8(ascii: "\\"): labels.append(contentsOf: #"\\"#.utf8)
                case UInt8(ascii: "\""): labels.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\n"): labels.append(contentsOf: #"\n"#.utf8)
                default: labels.append(b)
                }
            }
            labels.append(UInt8(ascii: "\""))
        }
        renderedLabels = labels
        cells = .allocate(capacity: Self.cellCount)
        cells.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: Self.cellCount)
    }

    deinit {
        cells.deinitialize(count: Self.cellCount)
        cells.deallocate()
    }

    /// The bucket of `nanoseconds`: the first bound at or above it (index `boundsNs.count` when
    /// none is).
    @inline(__always)
    static func bucket(of nanoseconds: UInt64) -> Int {
        // Most requests fall in the first few buckets: a forward scan ends there.
        var i = 0
        while i < boundsNs.count, nanoseconds > boundsNs[i] { i += 1 }
        return i
    }

    public func record(nanoseconds: UInt64) {
        UnsafeAtomic<UInt64>(at: cells + Self.bucket(of: nanoseconds)).wrappingIncrement(ordering: .relaxed)
        UnsafeAtomic<UInt64>(at: cells + sumIndex).wrappingIncrement(by: nanoseconds, ordering: .relaxed)
    }

    /// Cumulative bucket counts (Prometheus's `le` buckets, then +Inf, which is the count) and the sum.
    public func snapshot() -> (cumulative: [UInt64], sumNs: UInt64) {
        var cumulative: [UInt64] = []
        cumulative.reserveCapacity(Self.boundsNs.count + 1)
        var running: UInt64 = 0
        for i in 0...Self.boundsNs.count {
            running &+= UnsafeAtomic<UInt64>(at: cells + i).load(ordering: .relaxed)
            cumulative.append(running)
        }
        return (cumulative, UnsafeAtomic<UInt64>(at: cells + sumIndex).load(ordering: .relaxed))
    }

    /// Seconds as swift-prometheus writes a Duration: whole seconds, a point, the fraction without
    /// trailing zeros (at least one digit): 0.00005, 1.0, 0.000841027.
    static func seconds(_ nanoseconds: UInt64) -> String {
        var fraction = String(nanoseconds % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.count > 1, fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(nanoseconds / 1_000_000_000).\(fraction)"
    }

    func emit(into buffer: inout [UInt8]) {
        let (cumulative, sum) = snapshot()
        let name = Self.metricName.utf8
        func series(_ suffix: String, le: String?, _ value: String) {
            buffer.append(contentsOf: name)
            buffer.append(contentsOf: suffix.utf8)
            buffer.append(UInt8(ascii: "{"))
            buffer.append(contentsOf: renderedLabels)
            if let le {
                buffer.append(contentsOf: #",le=""#.utf8)
                buffer.append(contentsOf: le.utf8)
                buffer.append(UInt8(ascii: "\""))
            }
            buffer.append(contentsOf: "} \(value)\n".utf8)
        }
        for (i, bound) in Self.boundsNs.enumerated() {
            series("_bucket", le: Self.seconds(bound), "\(cumulative[i])")
        }
        series("_bucket", le: "+Inf", "\(cumulative[Self.boundsNs.count])")
        series("_sum", le: nil, Self.seconds(sum))
        series("_count", le: nil, "\(cumulative[Self.boundsNs.count])")
    }

    // MARK: - Every version's histogram, for the metrics endpoint

    private static let all = Mutex<(order: [String], byKey: [String: LatencyHistogram])>(([], [:]))

    /// The histogram of `model` and `version`, made on first use and kept for the process's life
    /// (as swift-metrics keeps a Timer's), so a version loaded again continues its series.
    public static func forVersion(model: String, version: String) -> LatencyHistogram {
        let key = "\(model)\u{0}\(version)"
        return all.withLock { state in
            if let h = state.byKey[key] { return h }
            let h = LatencyHistogram(model: model, version: version)
            state.byKey[key] = h
            state.order.append(key)
            return h
        }
    }

    /// Every version's series under one `# TYPE` line, in the order the versions were first
    /// served; nothing before any was.
    public static func emitAll(into buffer: inout [UInt8]) {
        let histograms = all.withLock { state in state.order.compactMap { state.byKey[$0] } }
        guard !histograms.isEmpty else { return }
        buffer.append(contentsOf: "# TYPE \(metricName) histogram\n".utf8)
        for h in histograms { h.emit(into: &buffer) }
    }
}
