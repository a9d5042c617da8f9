import ArgumentParser
import SwerveClient
import SwerveProto
import SwerveTransport
import SwerveStatus

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `swerve bench`: a load generator for ModelInfer, and (with `--core`) a benchmark of the
/// inference core alone.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load a server with ModelInfer requests and report throughput and latency.",
        discussion: """
            Inputs are random values of each input's declared datatype and shape (the dynamic batch \
            dimension is --batch rows), encoded once before the run. By default every request is made \
            distinct by stamping its number into the first input element, so no server-side cache can \
            answer it; --distinct N sends a pool of N requests round-robin instead.

            Closed loop (default): --concurrency workers each send back to back.
            Open loop (--rate R): request i is due at start + i/R and its latency counts from then, \
            so time spent waiting while the server is behind is included (no coordinated omission). \
            At most --concurrency requests are in flight; when more than --max-backlog are overdue, \
            the oldest are dropped and counted.

            --inputs picks each request's input from a pool with a known cardinality and peakedness, \
            to exercise the server's serving paths (static table, response cache, batcher): \
            uniform = an input drawn uniformly from --distinct N (default 1,000,000); zipf:S = input \
            rank drawn from Zipf(S) over the same N (rank 0 the most popular); file:PATH = JSON lines, \
            one request's inputs per line ({"input": [[...]]}), sent in order and cycled. Input k is \
            made from k on the fly: numeric models get seeded random values with k written into the \
            first element(s); a BYTES input gets, per row, one category per column spelling k in mixed \
            radix over the column's --vocab values (--vocab input=a,b,c;d,e;f,g, columns split by ';'), \
            or without --vocab the strings "v<digit>" (base 16, the last column takes the rest). The \
            request stream is a pure function of --seed: see IndexedInputs.index in BenchPaths.swift. \
            With --inputs, the server's PathStatistics for the model (hits, misses, hit ratio, active \
            path, cardinality, peakedness, static table size) are printed at the end.

            --core runs an ONNX file in-process with the inference core (no server): \
            swerve bench --core --model-file model.onnx --batch 32 --iterations 2000. \
            --math measures the vector math kernels against libm: swerve bench --math.
            """)

    @OptionGroup var connection: ClientConnectionOptions

    @Option(name: .customLong("model"), help: "The model to load. Several (NAME:WEIGHT, e.g. --model a:3 --model b:1) share one run, their requests interleaved in those proportions; figures are then over the mix, with each model's latency beside them.")
    var modelArguments: [String] = []

    /// Each `--model` as (name, weight).
    func models() throws -> [(name: String, weight: Int)] {
        try modelArguments.map { text in
            if let colon = text.lastIndex(of: ":"), let w = Int(text[text.index(after: colon)...]) {
                guard w >= 1, w <= 1000 else { throw ValidationError("--model \(text): a weight is a whole number from 1 to 1000") }
                return (String(text[..<colon]), w)
            }
            return (text, 1)
        }
    }

    /// The first `--model`'s name.
    var model: String? { (try? models())?.first?.name }

    @Option(name: .long, help: "The model version; the server's choice when omitted.")
    var version: String = ""

    @Option(name: .long, help: "Closed loop: concurrent workers (default 1). Open loop: the most requests in flight (default 256).")
    var concurrency: Int?

    @Option(name: .long, help: "Seconds to measure.")
    var duration: Double = 10

    @Option(name: .long, help: "Open loop: requests per second on a fixed schedule.")
    var rate: Double?

    @Option(name: .long, help: "HTTP/2 connections to spread requests over.")
    var connections: Int = 1

    @Option(name: .long, help: "Rows per request (the size of the dynamic first dimension); with --core, the batch run.")
    var batch: Int = 1

    @Option(name: .long, help: "Write all figures as JSON to this file ('-' for standard output).")
    var json: String?

    @Option(name: .long, help: "Seconds of load before measuring.")
    var warmup: Double = 1

    @Option(name: .long, help: "Stop after this many requests, whatever the duration.")
    var requests: Int = 100_000_000

    @Option(name: .long, help: "Distinct requests sent round-robin; 0 makes every request distinct (default 0). With --inputs uniform|zipf:S, the number of distinct inputs (default 1000000).")
    var distinct: Int?

    @Option(name: .long, help: "Input distribution: uniform, zipf:S (e.g. zipf:1.1) or file:PATH (JSON lines). Default: random inputs as --distinct says.")
    var inputs: String?

    @Option(name: .long, help: "Values of a BYTES input's columns for --inputs uniform|zipf: NAME=a,b,c;d,e (columns split by ';'). Repeatable.")
    var vocab: [String] = []

    @Option(name: .customLong("hot-inputs"), help: "--inputs uniform|zipf: encodings of the first N indices made before the run (when inputs cannot be stamped cheaply).")
    var hotInputs: Int = 4096

    @Option(name: .customLong("max-backlog"), help: "Open loop: overdue requests allowed to queue before dropping (default: one second of the rate).")
    var maxBacklog: Int?

    @Option(name: .long, help: "Seed of the random inputs.")
    var seed: UInt64 = 42

    @Option(name: .long, help: "A label copied into the JSON report.")
    var label: String?

    @Option(name: .long, help: "Sweep one parameter, a measured step per value: concurrency=1,2,4,8 or rate=1000:64000:x2 (start:end:xFACTOR or :+STEP); stops early once the server saturates (a rate step achieves under 90% of its rate, or more concurrency adds under 5% throughput while p99 grows by half) or p99 passes --max-p99.")
    var sweep: String?

    @Flag(name: .customLong("full-sweep"), help: "--sweep: run every value even past saturation (for a fixed table, such as a benchmark script's); the first saturation is still reported.")
    var fullSweep = false

    @Option(name: .customLong("max-p99"), help: "--sweep: stop once a step's p99 passes this (e.g. 5ms, 800us).")
    var maxP99: String?

    @Option(name: .long, help: "Gates, comma-separated, e.g. 'p99<2ms,errors<0.1%,rate>=5000' (p50/p90/p95/p99/p99.9/mean/max in us|ms|s, errors as a share with % or a count, rate in req/s, rows in rows/s): exit 3 when one fails; with --sweep, the last step passing them all is the capacity, and the run fails when none does.")
    var slo: String?

    @Option(name: .long, help: "Write perf_analyzer's CSV (its -f columns, latencies in µs) to this file: one row, or one per sweep step.")
    var csv: String?

    @Option(name: .long, help: "Write each run's (each sweep step's) latency distribution as HdrHistogram .hgrm text (ms) into this directory.")
    var hgrm: String?

    @Flag(name: .customLong("replay-timing"), help: "With --inputs file: whose lines carry \"_time\" (seconds): send each request at its recorded time from the start (open loop, latency from that time), the file once; the warm-up is skipped.")
    var replayTiming = false

    @Option(name: .long, help: "Write one self-contained HTML page (inline SVG, no network) with latency against throughput, each run's percentile spectrum (log scale) and a per-second timeline of rate, p99 and errors.")
    var report: String?

    @Option(name: .long, help: "Side by side: NAME=HOST:PORT[/MODEL], given several times; the same load runs against each in alternating rounds (--rounds), and each figure is reported as the median and spread per target with the ratio to the first target. MODEL defaults to --model.")
    var target: [String] = []

    @Option(name: .long, help: "With --target: rounds, each running every target once, in turn.")
    var rounds: Int = 3

    @Flag(name: .customLong("route-key"), help: "Send x-swerve-route-key (a hash of the request's model and inputs) with every request, for cache-affine load balancing (deploy/haproxy).")
    var routeKey = false

    @Flag(name: .long, help: "Send typed contents rather than raw_input_contents.")
    var typed = false

    @Flag(name: .long, help: "No per-second progress lines.")
    var quiet = false

    @Option(name: .customLong("dump-request"), help: "Write one gRPC-framed ModelInfer request (5-byte prefix + message) to this file and exit; for h2load -d.")
    var dumpRequest: String?

    @Flag(name: .long, help: "Benchmark the inference core in-process on --model-file (no server).")
    var core = false

    @Flag(name: .long, help: "Measure the vector math kernels against libm (accuracy over every float of each range, and speed); no server.")
    var math = false

    @Option(name: .customLong("math-stride"), help: "--math: try every Nth float (1: all of them).")
    var mathStride: UInt64 = 1

    @Option(name: .customLong("math-variants"), help: "--math: variants to measure, comma-separated (default: all this CPU runs).")
    var mathVariants: String?

    @Option(name: .customLong("math-functions"), help: "--math: functions to measure, comma-separated (default: all).")
    var mathFunctions: String?

    @Option(name: .customLong("model-file"), help: "--core: the model file to run (ONNX, or a native *.xgb.json / *.lgb.txt).")
    var modelFile: String?

    @Option(name: .customLong("core-rows"), help: "--core: FP32 rows to feed (raw little-endian floats, the model's features per row, as numpy's tofile writes them); a batch takes rows in turn. Default: uniform random values.")
    var coreRows: String?

    @Option(name: .long, help: "--core: timed runs.")
    var iterations: Int = 1000

    func validate() throws {
        if math {
            guard mathStride >= 1 else { throw ValidationError("--math-stride must be at least 1") }
            return
        }
        if core {
            guard modelFile != nil else { throw ValidationError("--core needs --model-file PATH") }
            guard iterations > 0 else { throw ValidationError("--iterations must be positive") }
        } else {
            let mix = try models()
            for m in mix { try validateModelNameArgument(m.name) }
            if mix.count > 1 {
                guard Set(mix.map(\.name)).count == mix.count else { throw ValidationError("--model: each model once (give it a weight instead)") }
                guard target.isEmpty, dumpRequest == nil, inputs == nil else {
                    throw ValidationError("several --model go with neither --target, --dump-request nor --inputs")
                }
            }
            guard model != nil || (!target.isEmpty && (try? target.allSatisfy { try BenchTarget(parsing: $0).model != nil }) == true) else {
                throw ValidationError("give --model NAME (or --core --model-file PATH)")
            }
            guard duration > 0 else { throw ValidationError("--duration must be positive") }
            guard warmup >= 0 else { throw ValidationError("--warmup cannot be negative") }
            guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
            guard requests >= 1 else { throw ValidationError("--requests must be at least 1") }
            if let distinct, distinct < 0 { throw ValidationError("--distinct cannot be negative") }
            if let inputs {
                let d = try BenchInputDistribution(parsing: inputs)
                if case .file = d {} else if let distinct, distinct < 1 {
                    throw ValidationError("--inputs \(inputs) needs --distinct of at least 1")
                }
            }
            _ = try parseVocabularies(vocab)
            guard hotInputs >= 0 else { throw ValidationError("--hot-inputs cannot be negative") }
            if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
            if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
            if let sweep {
                let parsed = try BenchSweep(parsing: sweep)
                if parsed.parameter == .concurrency && rate != nil { throw ValidationError("--sweep concurrency is a closed loop: drop --rate") }
                if parsed.parameter == .rate && rate != nil { throw ValidationError("--sweep rate sets the rate: drop --rate") }
            } else if fullSweep {
                throw ValidationError("--full-sweep goes with --sweep")
            }
            if let maxP99 {
                guard sweep != nil else { throw ValidationError("--max-p99 goes with --sweep") }
                guard !fullSweep else { throw ValidationError("--max-p99 stops a sweep and --full-sweep never does: choose one") }
                _ = try BenchGate(parsing: "p99<" + maxP99)
            }
            if let slo { _ = try BenchGate.parse(list: slo) }
            if replayTiming {
                guard let inputs, inputs.hasPrefix("file:") else { throw ValidationError("--replay-timing replays --inputs file:PATH") }
                guard rate == nil, sweep == nil, target.isEmpty else { throw ValidationError("--replay-timing sets the timing: drop --rate, --sweep and --target") }
            }
            if !target.isEmpty {
                let parsed = try target.map(BenchTarget.init(parsing:))
                guard Set(parsed.map(\.name)).count == parsed.count else { throw ValidationError("--target names must differ") }
                guard rounds >= 1, rounds <= 100 else { throw ValidationError("--rounds must be within 1...100") }
                guard sweep == nil else { throw ValidationError("--target runs one load per target and round; drop --sweep (run a sweep per target instead)") }
                guard dumpRequest == nil else { throw ValidationError("--dump-request goes with one server, not --target") }
            }
            if let maxBacklog, maxBacklog < 0 { throw ValidationError("--max-backlog cannot be negative") }
        }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    func run() async throws {
        if math {
            let list = { (s: String?) in s.map { $0.split(separator: ",").map { String($0) } } }
            runMathBench(stride: mathStride, variants: list(mathVariants), functions: list(mathFunctions))
            return
        }
        if core {
            let result = try runCoreBench(
                modelFile: modelFile!, batch: batch, iterations: iterations, warmupIterations: max(10, iterations / 10), seed: seed,
                rowsFile: coreRows)
            print("core \(modelFile!) batch \(batch): mean \(fixed(result.meanMicros, 2)) µs  p50 \(fixed(result.p50Micros, 2))  p99 \(fixed(result.p99Micros, 2))  \(fixed(result.rowsPerSecond, 0)) rows/s")
            if let json { try writeJSON(result, to: json) }
            return
        }
        if !target.isEmpty { return try await runTargets() }
        let mix = try models()
        // A mix reads every model's statistics (ModelStatistics of "") and names itself a+b.
        let model = mix.count == 1 ? mix[0].name : ""
        try await connection.withClient(connections: connections, routeKey: routeKey) { client in
            let source: BenchRequestSource, probe: [UInt8]
            if mix.count == 1 {
                guard let prepared = try await prepare(client: client, model: model) else { return }
                (source, probe) = prepared
            } else {
                var parts: [(name: String, weight: Int, source: BenchRequestSource)] = []
                var first: [UInt8]?
                for m in mix {
                    guard let (s, p) = try await prepare(client: client, model: m.name) else { return }
                    parts.append((m.name, m.weight, s))
                    first = first ?? p
                }
                (source, probe) = (BenchRequestSource.mixing(parts), first!)
            }
            let gates = try slo.map(BenchGate.parse(list:)) ?? []
            var next = 1  // request 0 was the probe; each phase continues the input stream where the last stopped
            func measure(workers: Int, rate: Double?, progress: Bool) async -> (BenchRunReport, PhaseResult) {
                var (report, phase, after) = await measureRun(client: client, model: model, source: source, probeBytes: probe.count,
                                                              workers: workers, rate: rate, progress: progress, firstRequest: next)
                next = after
                if mix.count > 1 { report.model = mix.map { "\($0.name):\($0.weight)" }.joined(separator: "+") }
                return (report, phase)
            }
            if let hgrm { try FileManager.default.createDirectory(atPath: hgrm, withIntermediateDirectories: true) }

            if let sweep = try sweep.map(BenchSweep.init(parsing:)) {
                let limit = try maxP99.map { try BenchGate(parsing: "p99<" + $0) }
                var steps: [BenchRunReport] = []
                var stopped = ""
                var saturation = ""
                print("sweep \(sweep.parameter.rawValue): \(sweep.values.map(sweep.label).joined(separator: ", "))\(gates.isEmpty ? "" : "; gates \(gates.map(\.text).joined(separator: ", "))")")
                for (k, value) in sweep.values.enumerated() {
                    let (workers, stepRate): (Int, Double?) = sweep.parameter == .concurrency
                        ? (Int(value), nil) : (concurrency ?? 256, value)
                    let (report, phase) = await measure(workers: workers, rate: stepRate, progress: false)
                    steps.append(report)
                    let passed = gates.allSatisfy { $0.passes(report) }
                    print(Self.stepLine(k, of: sweep.values.count, "\(sweep.parameter.rawValue) \(sweep.label(value))", report)
                          + (gates.isEmpty ? "" : passed ? "  gates pass" : "  gates FAIL: " + gates.filter { !$0.passes(report) }.map { "\($0.text) (\($0.describe($0.actual(report))))" }.joined(separator: ", ")))
                    if let hgrm {
                        try hgrmText(phase.tally.latency).write(toFile: "\(hgrm)/step-\(k + 1)-\(sweep.parameter.rawValue)-\(sweep.label(value)).hgrm", atomically: true, encoding: .utf8)
                    }
                    if let limit, !limit.passes(report) {
                        stopped = "p99 \(limit.describe(limit.actual(report))) passed --max-p99 \(maxP99!)"
                    } else if let stepRate, report.throughputRps < 0.9 * stepRate {
                        stopped = "saturated: \(fixed(report.throughputRps, 1)) req/s achieved of \(sweep.label(stepRate)) offered"
                    } else if sweep.parameter == .concurrency, steps.count >= 2 {
                        let last = steps[steps.count - 2]
                        if report.throughputRps < 1.05 * last.throughputRps && Double(report.latencyMicros.p99) > 1.5 * Double(last.latencyMicros.p99) {
                            stopped = "saturated: throughput \(fixed(report.throughputRps, 1)) req/s (+\(fixed((report.throughputRps / max(1, last.throughputRps) - 1) * 100, 1))%) while p99 rose \(fixed(Double(report.latencyMicros.p99) / Double(max(1, last.latencyMicros.p99)), 2))x"
                        }
                    }
                    if fullSweep {
                        if saturation.isEmpty && !stopped.isEmpty { saturation = "at \(sweep.parameter.rawValue) \(sweep.label(value)): \(stopped)" }
                        if !stopped.isEmpty { print("saturated, going on (--full-sweep): \(stopped)") }
                        stopped = ""
                        continue
                    }
                    if !stopped.isEmpty && k < sweep.values.count - 1 {
                        print("stopping: \(stopped)")
                        break
                    }
                    if k == sweep.values.count - 1 { stopped = "" }
                }
                let capacity = gates.isEmpty ? nil : steps.lastIndex { r in gates.allSatisfy { $0.passes(r) } }
                print("")
                print(Self.sweepTable(sweep, steps))
                if !gates.isEmpty {
                    if let capacity {
                        print("capacity within the gates: \(sweep.parameter.rawValue) \(sweep.label(sweep.values[capacity])) (\(fixed(steps[capacity].throughputRps, 1)) req/s)")
                    } else {
                        print("no step passed the gates \(gates.map(\.text).joined(separator: ", "))")
                    }
                }
                if let csv { try perfAnalyzerCSV(steps, byRate: sweep.parameter == .rate).write(toFile: csv, atomically: true, encoding: .utf8) }
                if let path = report {
                    let runs = steps.enumerated().map { ("\(sweep.parameter.rawValue) \(sweep.label(sweep.values[$0]))", "sweep", $1) }
                    try writeReport(path, runs: runs, what: "sweep of \(sweep.parameter.rawValue) over \(sweep.values.map(sweep.label).joined(separator: ", "))"
                                    + (stopped.isEmpty ? "" : "; stopped: \(stopped)") + (saturation.isEmpty ? "" : "; saturated \(saturation)"))
                }
                if let json {
                    try writeJSON(BenchSweepReport(parameter: sweep.parameter.rawValue, values: sweep.values, steps: steps,
                                                   stoppedBecause: stopped, saturation: saturation, gates: gates, capacityStep: capacity), to: json)
                }
                if !gates.isEmpty && capacity == nil { throw ExitCode(3) }
                return
            }

            if replayTiming && source.recordedTimes == nil {
            throw ValidationError("--replay-timing: the lines of \(inputs ?? "") carry no \"_time\"")
        }
        let (run, phase) = await measure(workers: concurrency ?? (rate == nil && !replayTiming ? 1 : 256), rate: rate, progress: !quiet)
            let report = run
            report.printSummary()
            if let path = self.report { try writeReport(path, runs: [("run", "run", report)], what: "one run") }
            report.pathStatistics?.printSummary()
            if let problem = report.pathProblem { print("server paths: not available (\(problem))") }
            if let hgrm { try hgrmText(phase.tally.latency).write(toFile: "\(hgrm)/run.hgrm", atomically: true, encoding: .utf8) }
            if let csv { try perfAnalyzerCSV([report], byRate: rate != nil).write(toFile: csv, atomically: true, encoding: .utf8) }
            if let json { try writeJSON(report, to: json) }
            if !gates.isEmpty {
                var failed = false
                for g in gates {
                    let ok = g.passes(report)
                    failed = failed || !ok
                    print("gate \(g.text): \(ok ? "pass" : "FAIL") (\(g.describe(g.actual(report))))")
                }
                if failed { throw ExitCode(3) }
            }
        }
    }

    /// `--target`: the same load against each target in alternating rounds (A B C, A B C, ...), so
    /// what a shared, noisy machine does to one round it does to every target alike; then each
    /// figure's median and spread per target, and its ratio to the first target's median.
    func runTargets() async throws {
        let targets = try target.map(BenchTarget.init(parsing:))
        let gates = try slo.map(BenchGate.parse(list:)) ?? []
        var runs: [BenchRunReport] = []
        var next: [String: Int] = [:]
        print("\(targets.count) targets, \(rounds) rounds: " + targets.map { "\($0.name) = \($0.address)/\($0.model ?? model!)" }.joined(separator: ", "))
        for round in 1...rounds {
            for t in targets {
                var one = self
                one.connection.server = t.address
                let model = t.model ?? self.model!
                try await one.connection.withClient(connections: connections, routeKey: routeKey) { client in
                    guard let (source, probe) = try await one.prepare(client: client, model: model) else { return }
                    var (report, _, after) = await one.measureRun(
                        client: client, model: model, source: source, probeBytes: probe.count,
                        workers: concurrency ?? (rate == nil ? 1 : 256), rate: rate, progress: false, firstRequest: next[t.name] ?? 1)
                    next[t.name] = after
                    report.target = t.name
                    report.round = round
                    runs.append(report)
                    print(Self.stepLine(round - 1, of: rounds, "round \(round) \(t.name)", report).replacingOccurrences(of: "[step ", with: "[round "))
                }
            }
        }
        let summary = BenchComparison(targets: targets.map(\.name), runs: runs)
        print("")
        print(summary.table())
        if let csv { try perfAnalyzerCSV(runs, byRate: rate != nil).write(toFile: csv, atomically: true, encoding: .utf8) }
        if let json { try writeJSON(summary, to: json) }
        if let path = report {
            try writeReport(path, runs: runs.map { ("\($0.target ?? "") round \($0.round ?? 0)", $0.target ?? "", $0) },
                            what: "\(targets.count) targets in \(rounds) alternating rounds: " + targets.map { "\($0.name) = \($0.address)" }.joined(separator: ", "),
                            extra: "<h2>Medians by target</h2>" + summaryHTML(summary))
        }
        if !gates.isEmpty {
            var failed = false
            for name in targets.map(\.name) {
                for g in gates {
                    // A gate holds for a target when it holds for the median of its rounds.
                    let median = BenchComparison.median(runs.filter { $0.target == name }.map { g.actual($0) })
                    let ok = g.passes(value: median)
                    failed = failed || !ok
                    print("gate \(g.text) on \(name): \(ok ? "pass" : "FAIL") (median \(g.describe(median)))")
                }
            }
            if failed { throw ExitCode(3) }
        }
    }

    func writeReport(_ path: String, runs: [(String, String, BenchRunReport)], what: String, extra: String = "") throws {
        let first = runs.first?.2
        let title = "swerve bench: \(first?.model ?? model ?? "")"
        let subtitle = "\(what). \(first.map { "\($0.mode) loop, concurrency \($0.concurrency)\($0.rate.map { ", rate \(fixed($0, 0)) req/s" } ?? ""), batch \($0.batch), \($0.inputs), \(fixed($0.durationSeconds, 1)) s per run" } ?? "")"
        let named = runs.map { (name: $0.0, group: $0.1, report: $0.2) }
        let html = BenchHTML.page(title: title, subtitle: subtitle, runs: named, table: extra + BenchHTML.table(named))
        try html.write(toFile: path, atomically: true, encoding: .utf8)
        print("report: \(path)")
    }

    func summaryHTML(_ c: BenchComparison) -> String {
        var rows = "<table><tr><th>target</th><th>req/s median</th><th>min</th><th>max</th><th>ratio</th><th>p99 µs median</th><th>ratio</th></tr>"
        for t in c.targets {
            guard let f = c.figures[t], let r = f["throughput_rps"], let p = f["p99_us"] else { continue }
            rows += "<tr><td>\(BenchHTML.escape(t))</td><td>\(fixed(r.median, 1))</td><td>\(fixed(r.min, 1))</td><td>\(fixed(r.max, 1))</td><td>\(fixed(r.ratio, 3))</td><td>\(fixed(p.median, 0))</td><td>\(fixed(p.ratio, 3))</td></tr>"
        }
        return rows + "</table>"
    }

    /// The request source for `model` (from its metadata) and the answer to one checked request
    /// (a bench of nothing but errors measures nothing); nil after --dump-request wrote its file.
    func prepare(client: SwerveClient, model: String) async throws -> (BenchRequestSource, [UInt8])? {
        let metadata = try await client.modelMetadata(name: model, version: version)
        let specs = BenchInputSpec.from(metadata.inputs, batch: batch)
        let distribution = try inputs.map(BenchInputDistribution.init(parsing:)) ?? .legacy
        let source: BenchRequestSource
        do {
            source = try BenchRequestSource.make(
                distribution: distribution, model: model, version: version, specs: specs,
                distinct: distribution == .legacy ? (dumpRequest == nil ? distinct ?? 0 : 1) : distinct ?? 1_000_000,
                typed: typed, seed: seed, vocab: try parseVocabularies(vocab), hotCount: hotInputs)
        } catch let error as ValidationError {
            printError("swerve: \(error.message)")
            throw ExitCode.validationFailure
        }
        if let path = dumpRequest {
            let message = source.request(0)
            var framed: [UInt8] = [0]
            withUnsafeBytes(of: UInt32(message.count).bigEndian) { framed.append(contentsOf: $0) }
            framed.append(contentsOf: message)
            try Data(framed).write(to: URL(fileURLWithPath: path))
            print("wrote \(framed.count) bytes (a \(message.count)-byte ModelInfer request for \(model), batch \(batch)) to \(path)")
            return nil
        }
        let probe = try await client.modelInfer(serialized: source.request(0))
        let response: InferResult
        do {
            response = try InferResult(try ModelInferResponse(serializedBytes: probe))
        } catch {
            throw GRPCStatus(.internal, "cannot decode the server's ModelInfer response: \(error)")
        }
        guard !response.outputNames.isEmpty else { throw GRPCStatus(.internal, "the server's ModelInfer response has no outputs") }
        return (source, probe)
    }

    /// A warm-up, then the measured phase, with the server's own figures around it; the report,
    /// the phase (its histograms) and the input stream's next request number.
    func measureRun(client: SwerveClient, model: String, source: BenchRequestSource, probeBytes: Int, workers: Int, rate: Double?,
                    progress: Bool, firstRequest: Int) async -> (BenchRunReport, PhaseResult, Int) {
        let wantsPaths = inputs != nil  // a known input distribution: the serving paths matter
        var plan = LoadPlan(
            workers: workers, durationNanos: UInt64(warmup * 1e9), maxRequests: requests, rate: rate,
            maxBacklog: maxBacklog ?? max(workers, Int(rate ?? 0)),
            timeout: .milliseconds(Int64(connection.timeout * 1000)), progress: false)
        plan.firstRequest = firstRequest
        var warmupRequests = 0
        if replayTiming, let times = source.recordedTimes {
            plan.replayNanos = times.map { UInt64($0 * 1e9) }
            plan.firstRequest = 0
        }
        if warmup > 0 && plan.replayNanos == nil {
            let phase = await runLoadPhase(client: client, source: source, plan: plan)
            warmupRequests = phase.tally.ok + phase.tally.errors.values.reduce(0, +)
            plan.firstRequest += warmupRequests
        }
        let before = wantsPaths ? await fetchPathStatistics(connection: connection, model: model, version: version).0 : nil
        let statsBefore = try? await client.modelStatistics(name: model, version: version, timeout: .seconds(10))
        plan.durationNanos = UInt64(duration * 1e9)
        plan.progress = progress
        let startedMs = UInt64(Date().timeIntervalSince1970 * 1000)
        let phase = await runLoadPhase(client: client, source: source, plan: plan)
        let next = plan.firstRequest + phase.tally.ok + phase.tally.errors.values.reduce(0, +)
        var report = BenchRunReport(
            label: label, server: connection.server, model: model, version: version, plan: plan,
            connections: connections, batch: batch, typed: typed, source: source, responseBytes: probeBytes, warmupSeconds: warmup, phase: phase)
        report.startedMs = startedMs
        report.endedMs = UInt64(Date().timeIntervalSince1970 * 1000)
        report.warmupRequests = warmupRequests
        report.seed = seed
        if let statsBefore, let statsAfter = try? await client.modelStatistics(name: model, version: version, timeout: .seconds(10)) {
            report.serverSide = ServerSideFigures(before: statsBefore, after: statsAfter)
        }
        if wantsPaths {
            let (after, problem) = await fetchPathStatistics(connection: connection, model: model, version: version)
            if let after {
                report.pathStatistics = BenchPathReport(total: after, measured: before.map { after.since($0) })
            } else if let problem {
                report.pathProblem = problem
            }
        }
        return (report, phase, next)
    }

    /// One sweep step's line, printed as it ends.
    static func stepLine(_ k: Int, of n: Int, _ what: String, _ r: BenchRunReport) -> String {
        let l = r.latencyMicros
        let errors = r.errors + r.dropped
        let share = r.requests + r.dropped > 0 ? Double(errors) / Double(r.requests + r.dropped) * 100 : 0
        var line = "[step \(k + 1)/\(n)] \(what): \(fixed(r.throughputRps, 1)) req/s  p50 \(l.p50) µs  p90 \(l.p90)  p99 \(l.p99)  p99.9 \(l.p999)  errors \(errors) (\(fixed(share, 2))%)"
        if let s = r.serverSide {
            line += "  server: queue \(fixed(s.queueMicros, 1)) µs, compute \(fixed(s.computeInputMicros + s.computeInferMicros + s.computeOutputMicros, 1)) µs"
            if s.cacheHits + s.cacheMisses > 0 { line += ", cache hits \(fixed(Double(s.cacheHits) / Double(s.cacheHits + s.cacheMisses) * 100, 1))%" }
        }
        return line
    }

    /// The latency-throughput curve as a table.
    static func sweepTable(_ sweep: BenchSweep, _ steps: [BenchRunReport]) -> String {
        var rows = ["| \(sweep.parameter.rawValue) | req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | errors | server queue µs | server compute µs |",
                    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for (k, r) in steps.enumerated() {
            let s = r.serverSide
            rows.append("| \(sweep.label(sweep.values[k])) | \(fixed(r.throughputRps, 1)) | \(r.latencyMicros.p50) | \(r.latencyMicros.p90) | \(r.latencyMicros.p99) | \(r.latencyMicros.p999) | \(r.errors + r.dropped) | \(s.map { fixed($0.queueMicros, 1) } ?? "-") | \(s.map { fixed($0.computeInputMicros + $0.computeInferMicros + $0.computeOutputMicros, 1) } ?? "-") |")
        }
        return rows.joined(separator: "\n")
    }
}
