import Histogram
import SwerveTransport

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Latency figures in microseconds.
struct LatencySummary: Codable, Sendable {
    var p50: UInt64
    var p90: UInt64
    var p95: UInt64
    var p99: UInt64
    var p999: UInt64
    var max: UInt64
    var min: UInt64
    var mean: Double
    var stddev: Double
    var count: UInt64

    init(_ h: Histogram<UInt64>) {
        let empty = h.totalCount == 0
        p50 = empty ? 0 : h.valueAtPercentile(50)
        p90 = empty ? 0 : h.valueAtPercentile(90)
        p95 = empty ? 0 : h.valueAtPercentile(95)
        p99 = empty ? 0 : h.valueAtPercentile(99)
        p999 = empty ? 0 : h.valueAtPercentile(99.9)
        max = empty ? 0 : h.max
        min = empty ? 0 : h.min
        mean = empty ? 0 : h.mean
        stddev = empty ? 0 : h.stdDeviation
        count = h.totalCount
    }
}

/// One row of the percentile distribution.
struct PercentilePoint: Codable, Sendable {
    var percentile: Double
    var valueMicros: UInt64
    var count: UInt64
}

/// Everything a `swerve bench` run measured; written with `--json`.
struct BenchRunReport: Codable, Sendable {
    var kind = "grpc"
    var label: String?
    var server: String
    var model: String
    var version: String
    var mode: String
    var concurrency: Int
    var connections: Int
    var batch: Int
    var rate: Double?
    var typed: Bool
    var uniqueRequests: Bool
    /// The request source, e.g. "zipf:1.1 over 1000000 distinct inputs".
    var inputs: String
    /// The seed the inputs were drawn with.
    var seed: UInt64?
    /// Requests sent in the warm-up (before the measured phase; request 0 is the probe).
    var warmupRequests: Int?
    var requestBytes: Int
    /// The size of the probe request's response message.
    var responseBytes: Int
    var warmupSeconds: Double
    var durationSeconds: Double
    var elapsedSeconds: Double
    var requests: Int
    var ok: Int
    var errors: Int
    var dropped: Int
    var errorsByCode: [String: Int]
    var errorMessages: [String: String]
    var throughputRps: Double
    var rowsPerSecond: Double
    /// Closed loop: from send to response. Open loop: from the intended send time.
    var latencyMicros: LatencySummary
    /// From the actual send to the response (differs from latency in an open loop only).
    var serviceTimeMicros: LatencySummary
    var percentiles: [PercentilePoint]
    var timeline: [ProgressPoint]
    /// The server's PathStatistics for the model (with --inputs).
    var pathStatistics: BenchPathReport?
    /// The server's ModelStatistics over the measured phase (when it answers them).
    var serverSide: ServerSideFigures?
    /// Why PathStatistics could not be read (with --inputs).
    var pathProblem: String?
    /// Wall-clock bounds of the measured phase, ms since the epoch.
    var startedMs: UInt64?
    var endedMs: UInt64?
    /// With several models (`--model a:3 --model b:1`): each model's share of the run.
    var models: [ModelShare]?

    struct ModelShare: Codable, Sendable {
        var name: String
        var weight: Int
        var ok: Int
        var errors: Int
        var latencyMicros: LatencySummary
    }

    /// `--target`: the target's name and the round.
    var target: String?
    var round: Int?

    init(
        label: String?, server: String, model: String, version: String, plan: LoadPlan, connections: Int, batch: Int,
        typed: Bool, source: BenchRequestSource, responseBytes: Int, warmupSeconds: Double, phase: PhaseResult
    ) {
        self.label = label
        self.server = server
        self.model = model
        self.version = version
        mode = plan.replayNanos != nil ? "replay" : plan.rate == nil ? "closed" : "open"
        concurrency = plan.workers
        self.connections = connections
        self.batch = batch
        rate = plan.rate
        self.typed = typed
        uniqueRequests = source.isUnique
        inputs = source.description
        requestBytes = source.requestBytes
        self.responseBytes = responseBytes
        self.warmupSeconds = warmupSeconds
        durationSeconds = Double(plan.durationNanos) / 1e9
        elapsedSeconds = Double(phase.elapsedNanos) / 1e9
        let tally = phase.tally
        errors = tally.errors.values.reduce(0, +)
        ok = tally.ok
        requests = ok + errors
        dropped = phase.dropped
        errorsByCode = Dictionary(uniqueKeysWithValues: tally.errors.map { ($0.key.canonicalName, $0.value) })
        errorMessages = Dictionary(uniqueKeysWithValues: tally.firstErrorMessage.map { ($0.key.canonicalName, $0.value) })
        throughputRps = elapsedSeconds > 0 ? Double(ok) / elapsedSeconds : 0
        rowsPerSecond = throughputRps * Double(source.rowsPerRequest)
        latencyMicros = LatencySummary(tally.latency)
        serviceTimeMicros = LatencySummary(tally.service)
        percentiles =
            tally.latency.totalCount == 0
            ? []
            : tally.latency.percentiles(ticksPerHalfDistance: 5).map {
                PercentilePoint(percentile: $0.percentileLevelIteratedTo, valueMicros: $0.value, count: $0.totalCountToThisValue)
            }
        timeline = phase.timeline
        if case .mixed(let mix) = source.kind {
            models = mix.names.indices.map { k in
                let h = k < tally.perModel.count ? tally.perModel[k] : makeLatencyHistogram()
                return ModelShare(name: mix.names[k], weight: mix.weights[k], ok: Int(h.totalCount),
                                  errors: k < tally.perModelErrors.count ? tally.perModelErrors[k] : 0, latencyMicros: LatencySummary(h))
            }
        }
    }

    func printSummary() {
        let rateText = rate.map { ", rate \(fixed($0, 0)) req/s" } ?? ""
        print("")
        print("\(model)\(version.isEmpty ? "" : " v\(version)") @ \(server): \(mode) loop, concurrency \(concurrency)\(rateText), connections \(connections), batch \(batch), \(inputs) \(typed ? "typed" : "raw") requests of \(requestBytes) bytes")
        print("requests \(requests) in \(fixed(elapsedSeconds, 2)) s: ok \(ok), errors \(errors)\(mode != "closed" ? ", dropped \(dropped)" : "")")
        print("throughput \(fixed(throughputRps, 1)) req/s, \(fixed(rowsPerSecond, 1)) rows/s")
        func line(_ name: String, _ l: LatencySummary) {
            print("\(name) µs: p50 \(l.p50)  p90 \(l.p90)  p99 \(l.p99)  p99.9 \(l.p999)  max \(l.max)  mean \(fixed(l.mean, 1))")
        }
        line(mode != "closed" ? "latency (from intended send)" : "latency", latencyMicros)
        if mode != "closed" { line("service time (from send)", serviceTimeMicros) }
        for m in models ?? [] {
            print("  \(m.name) (weight \(m.weight)): ok \(m.ok), errors \(m.errors), µs p50 \(m.latencyMicros.p50)  p99 \(m.latencyMicros.p99)")
        }
        for (code, count) in errorsByCode.sorted(by: { $0.value > $1.value }) {
            print("  \(code): \(count)  (first: \(errorMessages[code] ?? ""))")
        }
    }
}

/// Writes `value` as pretty, key-sorted JSON to `path` ("-" for standard output).
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    var data = try encoder.encode(value)
    data.append(0x0A)
    if path == "-" {
        print(String(decoding: data, as: UTF8.self), terminator: "")
    } else {
        try data.write(to: URL(fileURLWithPath: path))
    }
}
