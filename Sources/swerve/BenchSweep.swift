import ArgumentParser
import Histogram
import SwerveClient
import SwerveProto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `--sweep concurrency=1,2,4,8` or `--sweep rate=1000:64000:x2`: the values one parameter of the
/// load takes, one measured step each. A range is `start:end:xF` (multiply by F) or
/// `start:end:+S` (add S), end included when reached.
struct BenchSweep: Equatable, Sendable {
    enum Parameter: String, Sendable { case concurrency, rate }
    var parameter: Parameter
    var values: [Double]

    static let maxSteps = 64

    init(parameter: Parameter, values: [Double]) {
        self.parameter = parameter
        self.values = values
    }

    init(parsing text: String) throws {
        let usage = "--sweep takes concurrency=1,2,4 or rate=1000:64000:x2 (a list, or start:end:xFACTOR / start:end:+STEP), got '\(text)'"
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let parameter = Parameter(rawValue: parts[0].trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError(usage)
        }
        let spec = parts[1].trimmingCharacters(in: .whitespaces)
        var values: [Double] = []
        let range = spec.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
        if range.count == 3 {
            guard let start = Double(range[0]), let end = Double(range[1]), start > 0, end >= start, range[2].count >= 2,
                  let step = Double(range[2].dropFirst()), step > 0
            else { throw ValidationError(usage) }
            switch range[2].first {
            case "x":
                guard step > 1 else { throw ValidationError("--sweep: the factor of \(range[2]) must be above 1") }
                var v = start
                while v <= end * (1 + 1e-9), values.count <= Self.maxSteps { values.append(v); v *= step }
            case "+":
                var v = start
                while v <= end * (1 + 1e-9), values.count <= Self.maxSteps { values.append(v); v += step }
            default: throw ValidationError(usage)
            }
        } else if range.count == 1 {
            for item in spec.split(separator: ",") {
                guard let v = Double(item.trimmingCharacters(in: .whitespaces)), v > 0, v.isFinite else { throw ValidationError(usage) }
                values.append(v)
            }
        } else {
            throw ValidationError(usage)
        }
        guard !values.isEmpty else { throw ValidationError(usage) }
        guard values.count <= Self.maxSteps else { throw ValidationError("--sweep: at most \(Self.maxSteps) steps, '\(text)' makes more") }
        if parameter == .concurrency {
            guard values.allSatisfy({ $0 == $0.rounded() && $0 >= 1 && $0 <= 100_000 }) else {
                throw ValidationError("--sweep concurrency takes whole numbers from 1 to 100000, got '\(text)'")
            }
        }
        self.parameter = parameter
        self.values = values
    }

    /// A step's value as text (concurrency 4, rate 1000).
    func label(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v) }
}

/// One `--slo` gate: a figure of a run, compared with a threshold. `p99<2ms`, `p50<=800us`,
/// `mean<1.5ms`, `max<50ms`, `errors<0.1%` (share of requests), `errors<=3` (a count),
/// `rate>=5000` (successful requests per second), `rows>=100000` (rows per second).
struct BenchGate: Equatable, Sendable, Codable {
    enum Figure: String, Sendable, Codable {
        case p50, p90, p95, p99, p999 = "p99.9", mean, max, errorShare = "errors%", errorCount = "errors", rate, rows
    }
    enum Comparison: String, Sendable, Codable, CaseIterable { case le = "<=", ge = ">=", lt = "<", gt = ">" }

    var text: String
    var figure: Figure
    var comparison: Comparison
    /// Latency in microseconds, an error share in 0...1, else as given.
    var threshold: Double

    static func parse(list: String) throws -> [BenchGate] {
        try list.split(separator: ",").map { try BenchGate(parsing: String($0).trimmingCharacters(in: .whitespaces)) }
    }

    init(parsing text: String) throws {
        let usage = "--slo gates look like p99<2ms, p50<=800us, mean<1ms, max<50ms, errors<0.1%, errors<=3, rate>=5000, rows>=1e5; got '\(text)'"
        guard let comparison = Comparison.allCases.first(where: { text.contains($0.rawValue) }),
              let at = text.range(of: comparison.rawValue)
        else { throw ValidationError(usage) }
        let name = text[..<at.lowerBound].trimmingCharacters(in: .whitespaces).lowercased()
        var value = text[at.upperBound...].trimmingCharacters(in: .whitespaces).lowercased()
        self.text = text
        self.comparison = comparison
        switch name {
        case "p50", "p90", "p95", "p99", "p99.9", "p999", "mean", "max":
            figure = name == "p999" ? .p999 : Figure(rawValue: name)!
            var scale = 1.0
            for (suffix, s) in [("us", 1.0), ("µs", 1.0), ("ms", 1e3), ("s", 1e6)] where value.hasSuffix(suffix) {
                value = String(value.dropLast(suffix.count))
                scale = s
                break
            }
            guard let v = Double(value), v >= 0 else { throw ValidationError(usage) }
            threshold = v * scale
        case "errors":
            if value.hasSuffix("%") {
                guard let v = Double(value.dropLast()), v >= 0, v <= 100 else { throw ValidationError(usage) }
                figure = .errorShare
                threshold = v / 100
            } else {
                guard let v = Double(value), v >= 0 else { throw ValidationError(usage) }
                figure = .errorCount
                threshold = v
            }
        case "rate", "rows":
            guard let v = Double(value), v >= 0 else { throw ValidationError(usage) }
            figure = name == "rate" ? .rate : .rows
            threshold = v
        default:
            throw ValidationError(usage)
        }
    }

    /// The run's figure this gate reads.
    func actual(_ r: BenchRunReport) -> Double {
        switch figure {
        case .p50: Double(r.latencyMicros.p50)
        case .p90: Double(r.latencyMicros.p90)
        case .p95: Double(r.latencyMicros.p95)
        case .p99: Double(r.latencyMicros.p99)
        case .p999: Double(r.latencyMicros.p999)
        case .mean: r.latencyMicros.mean
        case .max: Double(r.latencyMicros.max)
        case .errorShare: r.requests + r.dropped > 0 ? Double(r.errors + r.dropped) / Double(r.requests + r.dropped) : 0
        case .errorCount: Double(r.errors + r.dropped)
        case .rate: r.throughputRps
        case .rows: r.rowsPerSecond
        }
    }

    func passes(_ r: BenchRunReport) -> Bool { passes(value: actual(r)) }

    func passes(value a: Double) -> Bool {
        switch comparison {
        case .lt: a < threshold
        case .le: a <= threshold
        case .gt: a > threshold
        case .ge: a >= threshold
        }
    }

    /// The figure as the gate's text spells its unit.
    func describe(_ value: Double) -> String {
        switch figure {
        case .p50, .p90, .p95, .p99, .p999, .mean, .max: value >= 1000 ? "\(fixed(value / 1000, 3)) ms" : "\(fixed(value, 0)) µs"
        case .errorShare: "\(fixed(value * 100, 3))%"
        case .errorCount: "\(Int(value))"
        case .rate: "\(fixed(value, 1)) req/s"
        case .rows: "\(fixed(value, 1)) rows/s"
        }
    }
}

/// What the server says it did during one step: ModelStatistics deltas, per successful request.
struct ServerSideFigures: Codable, Sendable {
    var requests: UInt64
    var failures: UInt64
    var executions: UInt64
    var queueMicros: Double
    var computeInputMicros: Double
    var computeInferMicros: Double
    var computeOutputMicros: Double
    var cacheHits: UInt64
    var cacheMisses: UInt64

    /// The difference of two readings of every version of the model.
    init?(before: [ModelStatistics], after: [ModelStatistics]) {
        func sum(_ s: [ModelStatistics], _ f: (ModelStatistics) -> UInt64) -> UInt64 { s.reduce(0) { $0 &+ f($1) } }
        func delta(_ f: (ModelStatistics) -> UInt64) -> UInt64 {
            let a = sum(after, f), b = sum(before, f)
            return a >= b ? a - b : 0
        }
        requests = delta { $0.success.count }
        guard requests > 0 else { return nil }
        failures = delta { $0.fail.count }
        executions = delta { $0.executionCount }
        let n = Double(requests)
        queueMicros = Double(delta { $0.queue.ns }) / n / 1000
        computeInputMicros = Double(delta { $0.computeInput.ns }) / n / 1000
        computeInferMicros = Double(delta { $0.computeInfer.ns }) / n / 1000
        computeOutputMicros = Double(delta { $0.computeOutput.ns }) / n / 1000
        cacheHits = delta { $0.cacheHit.count }
        cacheMisses = delta { $0.cacheMiss.count }
    }
}

/// A sweep's result: one report per step that ran, and why it stopped.
struct BenchSweepReport: Codable, Sendable {
    var kind = "sweep"
    var parameter: String
    var values: [Double]
    var steps: [BenchRunReport]
    /// Why the sweep ended before its last value ("" when it ran them all).
    var stoppedBecause: String
    /// With --full-sweep (which never stops): the first step that would have stopped the sweep, and why ("" when none).
    var saturation: String
    var gates: [BenchGate]
    /// The last step whose every gate passed (with gates), by index into `steps`.
    var capacityStep: Int?
}

/// perf_analyzer's CSV (`-f`): one row per step, in increasing throughput; latencies in µs.
/// Swerve's client does not time sending and receiving apart from the wait, so "Client Send" and
/// "Client Recv" are 0 and "Network+Server Send/Recv" is the mean latency less the server's queue
/// and compute time (from ModelStatistics, when the server answers it).
func perfAnalyzerCSV(_ steps: [BenchRunReport], byRate: Bool) -> String {
    var out = "\(byRate ? "Request Rate" : "Concurrency"),Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
        + "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency\n"
    for r in steps.sorted(by: { $0.rowsPerSecond < $1.rowsPerSecond }) {
        let s = r.serverSide
        let server = s.map { $0.queueMicros + $0.computeInputMicros + $0.computeInferMicros + $0.computeOutputMicros } ?? 0
        let first = byRate ? fixed(r.rate ?? 0, 1) : String(r.concurrency)
        let fields: [String] = [
            first, fixed(r.rowsPerSecond, 1), "0", String(Int(max(0, r.latencyMicros.mean - server).rounded())),
            String(Int((s?.queueMicros ?? 0).rounded())), String(Int((s?.computeInputMicros ?? 0).rounded())),
            String(Int((s?.computeInferMicros ?? 0).rounded())), String(Int((s?.computeOutputMicros ?? 0).rounded())), "0",
            String(r.latencyMicros.p50), String(r.latencyMicros.p90), String(r.latencyMicros.p95), String(r.latencyMicros.p99),
        ]
        out += fields.joined(separator: ",") + "\n"
    }
    return out
}

/// HdrHistogram's percentile distribution text (what its plotter reads), values in milliseconds.
func hgrmText(_ h: Histogram<UInt64>) -> String {
    var text = ""
    h.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1000)
    return text
}

/// `--target NAME=HOST:PORT[/MODEL]`.
struct BenchTarget: Equatable, Sendable {
    var name: String
    var address: String
    var model: String?

    init(parsing text: String) throws {
        let usage = "--target takes NAME=HOST:PORT or NAME=HOST:PORT/MODEL, got '\(text)'"
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ValidationError(usage)
        }
        name = parts[0]
        let rest = parts[1].split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = rest.first, (try? parseEndpoint(first)) != nil else { throw ValidationError(usage) }
        address = first
        model = rest.count == 2 ? rest[1] : nil
        if let model { try validateModelNameArgument(model) }
    }
}

/// Side-by-side results: every run in the order it ran, and per target the median and spread
/// (min, max) of each figure, with the ratio of its median to the first target's.
struct BenchComparison: Codable, Sendable {
    struct Figure: Codable, Sendable {
        var median: Double
        var min: Double
        var max: Double
        /// This target's median over the first target's.
        var ratio: Double
    }
    var kind = "comparison"
    var targets: [String]
    var runs: [BenchRunReport]
    /// target → figure name (throughput_rps, p50_us, p90_us, p99_us, p999_us, errors) → figure.
    var figures: [String: [String: Figure]]

    static let figureNames = ["throughput_rps", "p50_us", "p90_us", "p99_us", "p999_us", "errors"]

    static func value(_ name: String, _ r: BenchRunReport) -> Double {
        switch name {
        case "throughput_rps": r.throughputRps
        case "p50_us": Double(r.latencyMicros.p50)
        case "p90_us": Double(r.latencyMicros.p90)
        case "p99_us": Double(r.latencyMicros.p99)
        case "p999_us": Double(r.latencyMicros.p999)
        default: Double(r.errors + r.dropped)
        }
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    init(targets: [String], runs: [BenchRunReport]) {
        self.targets = targets
        self.runs = runs
        var figures: [String: [String: Figure]] = [:]
        for name in Self.figureNames {
            let base = Self.median(runs.filter { $0.target == targets.first }.map { Self.value(name, $0) })
            for t in targets {
                let values = runs.filter { $0.target == t }.map { Self.value(name, $0) }
                let m = Self.median(values)
                figures[t, default: [:]][name] = Figure(median: m, min: values.min() ?? .nan, max: values.max() ?? .nan,
                                                        ratio: base > 0 ? m / base : (m == base ? 1 : .nan))
            }
        }
        self.figures = figures
    }

    func table() -> String {
        var rows = ["| target | req/s median (min–max) | ratio | p50 µs | ratio | p99 µs | ratio | p99.9 µs | errors |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for t in targets {
            guard let f = figures[t] else { continue }
            func cell(_ name: String, _ digits: Int) -> String {
                let x = f[name]!
                return "\(fixed(x.median, digits)) (\(fixed(x.min, digits))–\(fixed(x.max, digits)))"
            }
            rows.append("| \(t) | \(cell("throughput_rps", 1)) | \(fixed(f["throughput_rps"]!.ratio, 2)) | \(cell("p50_us", 0)) | \(fixed(f["p50_us"]!.ratio, 2)) | \(cell("p99_us", 0)) | \(fixed(f["p99_us"]!.ratio, 2)) | \(cell("p999_us", 0)) | \(fixed(f["errors"]!.median, 0)) |")
        }
        return rows.joined(separator: "\n")
    }
}
