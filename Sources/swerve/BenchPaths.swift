import ArgumentParser
import SwerveClient
import SwerveProto
import SwerveInference
import SwerveRepository
import SwerveTransport
import SwerveStatus

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// `swerve bench --inputs uniform|zipf:S|file:PATH`: traffic with a known cardinality and
// peakedness, for the serving paths (static table, response cache, batcher), and the server's
// PathStatistics for the model at the end of the run.

/// The `--inputs` choice.
enum BenchInputDistribution: Sendable, Equatable {
    /// The default: see `BenchRequestSource.init(model:version:specs:distinct:typed:seed:)`.
    case legacy
    /// Each request's input drawn uniformly from `--distinct N` inputs.
    case uniform
    /// Each request's input rank drawn from Zipf(s) over `--distinct N` inputs (rank 0 the most popular).
    case zipf(Double)
    /// Requests read from JSON lines, cycled.
    case file(String)

    init(parsing text: String) throws {
        if text == "uniform" {
            self = .uniform
        } else if text.hasPrefix("zipf:") {
            guard let s = Double(text.dropFirst(5)), s > 0, s.isFinite else {
                throw ValidationError("--inputs zipf:S needs a positive exponent S, e.g. zipf:1.1 (got '\(text)')")
            }
            self = .zipf(s)
        } else if text.hasPrefix("file:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw ValidationError("--inputs file:PATH needs a path") }
            self = .file(path)
        } else {
            throw ValidationError("--inputs must be uniform, zipf:S or file:PATH, not '\(text)'")
        }
    }
}

/// `--vocab input=a,b,c;d,e;f,g`: the values of each column (element of a row) of a BYTES input,
/// columns separated by ';', values by ','. One column given stands for every column.
func parseVocabularies(_ specs: [String]) throws -> [String: [[String]]] {
    var result: [String: [[String]]] = [:]
    for spec in specs {
        let (name, body) = try splitAssignment(spec, option: "--vocab")
        let columns = body.split(separator: ";", omittingEmptySubsequences: false).map { column in
            column.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        guard !columns.isEmpty, columns.allSatisfy({ !$0.isEmpty && !$0.contains("") }) else {
            throw ValidationError("--vocab \(name): every column needs at least one non-empty value (a,b;c,d)")
        }
        result[name] = columns
    }
    return result
}

/// Inputs made from an index: request n carries input number k (uniform or Zipf over
/// `distinct`), and input k is always the same bytes. Nothing is materialized per index beyond
/// the encodings of the first `hot` indices (the most popular under Zipf); the rest are made on
/// the fly, cheaply: numeric models by writing k into the first element(s) of a seeded random
/// template, BYTES inputs by spelling k as one category per column.
final class IndexedInputs: Sendable {
    enum Draw: Sendable {
        case uniform
        case zipf(ZipfGenerator)
    }

    enum Encoder: Sendable {
        /// A template whose first element(s) carry k.
        case stamped(template: [UInt8], offset: Int, stamp: BenchRequestSource.Stamp)
        /// A full encode per index (BYTES inputs or types that cannot be stamped).
        case general(GeneralIndexEncoder)
    }

    let draw: Draw
    let distinct: Int
    let seed: UInt64
    let encoder: Encoder
    let hot: [[UInt8]]

    init(draw: Draw, distinct: Int, seed: UInt64, encoder: Encoder, hotCount: Int) throws {
        self.draw = draw
        self.distinct = distinct
        self.seed = seed
        self.encoder = encoder
        switch encoder {
        case .stamped: hot = []  // stamping is as cheap as a lookup
        case .general(let g): hot = try (0..<min(hotCount, distinct)).map { try g.encode($0) }
        }
    }

    /// The index request `n` carries. A pure function of (seed, n, distribution), so that the
    /// Python replay in benchmarks/ draws exactly the same stream: a SplitMix64 generator seeded
    /// with `seed ^ (n * 0xD1B54A32D192ED03)`, then one uniform draw (`next() % distinct`) or one
    /// Zipf draw (rejection-inversion, `ZipfGenerator.next`).
    @inline(__always)
    func index(_ n: Int) -> Int {
        var rng = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: n) &* 0xD1B5_4A32_D192_ED03))
        switch draw {
        case .uniform: return Int(rng.next() % UInt64(distinct))
        case .zipf(let z): return z.next(using: &rng)
        }
    }

    @inline(__always)
    func request(_ n: Int) -> [UInt8] { encode(index(n)) }

    /// The request for input number `k`.
    @inline(__always)
    func encode(_ k: Int) -> [UInt8] {
        if k < hot.count { return hot[k] }
        switch encoder {
        case .stamped(let template, let offset, let stamp):
            return BenchRequestSource.stamped(template, offset: offset, stamp: stamp, number: k)
        case .general(let g):
            // Encoding succeeded for index 0 with the same specs; it cannot fail for another index.
            return (try? g.encode(k)) ?? hot.first ?? []
        }
    }
}

/// Makes the request of index k from scratch: BYTES inputs spell k as categories, other inputs
/// are random values from a generator seeded by (seed, k).
struct GeneralIndexEncoder: Sendable {
    let model: String
    let version: String
    let specs: [BenchInputSpec]
    let typed: Bool
    let seed: UInt64
    /// Per BYTES input: one value list per column; missing = "v<digit>" names.
    let vocab: [String: [[String]]]

    func encode(_ k: Int) throws -> [UInt8] {
        var tensors: [String: ClientTensor] = [:]
        for spec in specs {
            if spec.datatype == "BYTES" {
                tensors[spec.name] = categories(spec, k)
            } else {
                var rng = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: k) &* 0x9E37_79B9_7F4A_7C15))
                tensors[spec.name] = try spec.randomTensor(&rng)
            }
        }
        return try SwerveClient.makeInferRequest(model: model, version: version, inputs: tensors, raw: !typed).serializedBytes()
    }

    /// Row r of the request for index k is category row number `k * rows + r`, written in mixed
    /// radix over the columns: column c takes digit c (radix = its vocabulary's size, wrapping
    /// past the product of the sizes). Without a vocabulary, each column but the last is a digit
    /// in base 16 spelled "v<digit>", and the last column takes the rest ("v<quotient>"), so that
    /// every index gives a different row.
    func categories(_ spec: BenchInputSpec, _ k: Int) -> ClientTensor {
        let rows = spec.shape.count > 1 ? Int(spec.shape[0]) : 1
        let total = spec.shape.reduce(1) { $0 * Int($1) }
        let width = max(1, total / max(rows, 1))
        let given = vocab[spec.name]
        var values: [[UInt8]] = []
        values.reserveCapacity(total)
        for r in 0..<rows {
            var rest = k &* rows &+ r
            for c in 0..<width {
                if let given {
                    let column = given.count == 1 ? given[0] : given[c % given.count]
                    values.append(Array(column[rest % column.count].utf8))
                    rest /= column.count
                } else if c == width - 1 {
                    values.append(Array("v\(rest)".utf8))
                } else {
                    values.append(Array("v\(rest % 16)".utf8))
                    rest /= 16
                }
            }
        }
        return ClientTensor(shape: spec.shape, bytes: values)
    }

    /// The number of distinct category rows the vocabularies give, when every BYTES input has one
    /// (nil: unbounded).
    var categoryRows: Int? {
        var product = 1
        for spec in specs where spec.datatype == "BYTES" {
            guard let columns = vocab[spec.name] else { return nil }
            let total = spec.shape.reduce(1) { $0 * Int($1) }
            let rows = spec.shape.count > 1 ? Int(spec.shape[0]) : 1
            let width = max(1, total / max(rows, 1))
            for c in 0..<width {
                product = product.multipliedReportingOverflow(by: (columns.count == 1 ? columns[0] : columns[c % columns.count]).count).partialValue
            }
        }
        return specs.contains { $0.datatype == "BYTES" } ? product : nil
    }
}

extension BenchRequestSource {
    /// The source for `--inputs uniform|zipf:S|file:PATH`.
    static func make(
        distribution: BenchInputDistribution, model: String, version: String, specs: [BenchInputSpec], distinct: Int,
        typed: Bool, seed: UInt64, vocab: [String: [[String]]], hotCount: Int
    ) throws -> BenchRequestSource {
        let rows = specs.first?.rows ?? 1
        switch distribution {
        case .legacy:
            return try BenchRequestSource(model: model, version: version, specs: specs, distinct: distinct, typed: typed, seed: seed)
        case .file(let path):
            let (pool, times) = try loadRequestFile(path, model: model, version: version, specs: specs, typed: typed)
            var source = BenchRequestSource(kind: .pool(pool), rowsPerRequest: rows, description: "file \(path) (\(pool.count) requests, cycled)")
            source.recordedTimes = times
            return source
        case .uniform, .zipf:
            for name in vocab.keys where !specs.contains(where: { $0.name == name && $0.datatype == "BYTES" }) {
                throw ValidationError("--vocab \(name): the model has no BYTES input '\(name)'")
            }
            let general = GeneralIndexEncoder(model: model, version: version, specs: specs, typed: typed, seed: seed, vocab: vocab)
            let encoder: IndexedInputs.Encoder
            var rng = SplitMix64(seed: seed)
            if let first = specs.first, specs.allSatisfy({ $0.datatype != "BYTES" }), let firstTensor = try? first.randomTensor(&rng),
                let (stamp, needle) = stampable(firstTensor)
            {
                // The numeric fast path: seeded noise everywhere, index k in the first element(s).
                var tensors = [first.name: firstTensor]
                for spec in specs.dropFirst() { tensors[spec.name] = try spec.randomTensor(&rng) }
                let template = try SwerveClient.makeInferRequest(model: model, version: version, inputs: tensors, raw: !typed).serializedBytes()
                guard let offset = find(needle, in: template) else { throw ValidationError("bench: cannot locate the first input in the encoded request") }
                encoder = .stamped(template: template, offset: offset, stamp: stamp)
            } else {
                encoder = .general(general)
            }
            let draw: IndexedInputs.Draw
            let name: String
            switch distribution {
            case .zipf(let s):
                draw = .zipf(ZipfGenerator(n: distinct, exponent: s))
                name = "zipf:\(s)"
            default:
                draw = .uniform
                name = "uniform"
            }
            var text = "\(name) over \(distinct) distinct inputs"
            if case .general = encoder, let cells = general.categoryRows, cells < distinct * rows {
                text += " (the vocabularies give \(cells) distinct rows: indices wrap)"
            }
            let inputs = try IndexedInputs(draw: draw, distinct: distinct, seed: seed, encoder: encoder, hotCount: hotCount)
            return BenchRequestSource(kind: .indexed(inputs), rowsPerRequest: rows, description: text)
        }
    }
}

/// Reads `{"input": [[...]], ...}` lines (one request each; blank lines and lines starting with
/// '#' skipped), converts each named array to its input's datatype, and encodes the requests.
/// A line may carry `"_time": SECONDS`, when the request was sent (any origin, never
/// decreasing); then every line must, and the times come back, from the first, for
/// `--replay-timing`.
func loadRequestFile(_ path: String, model: String, version: String, specs: [BenchInputSpec], typed: Bool) throws -> ([[UInt8]], [Double]?) {
    let data: Data
    do {
        guard let read = try DurableFiles.readIfPresent(path, limit: 1 << 30, what: "request file") else {
            throw ValidationError("--inputs file:\(path): it does not exist")
        }
        data = read
    } catch let error as StorageError {
        throw ValidationError("--inputs file:\(path): \(error.message)")
    }
    var requests: [[UInt8]] = []
    var times: [Double]?
    for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let text = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty || text.hasPrefix("#") { continue }
        let place = "\(path):\(number + 1)"
        guard let members = topLevelMembers(text) else {
            throw ValidationError("\(place): not a JSON object like {\"input\": [[...]]}")
        }
        var tensors: [String: ClientTensor] = [:]
        var time: Double?
        for (name, valueText) in members {
            if name == "_time" {
                guard let t = Double(valueText.trimmingCharacters(in: .whitespaces)), t.isFinite else {
                    throw ValidationError("\(place): \"_time\" must be a number of seconds, got \(valueText)")
                }
                time = t
                continue
            }
            guard let spec = specs.first(where: { $0.name == name }) else {
                throw ValidationError("\(place): the model has no input '\(name)' (it has \(specs.map(\.name).joined(separator: ", ")))")
            }
            do {
                tensors[name] = try NestedArray.parse(valueText).tensor(datatype: spec.datatype)
            } catch let error as NestedArray.ParseError {
                throw ValidationError("\(place): input '\(name)': \(error.message)")
            }
        }
        for spec in specs where tensors[spec.name] == nil {
            throw ValidationError("\(place): input '\(spec.name)' is missing")
        }
        if !requests.isEmpty && (time != nil) != (times != nil) {
            throw ValidationError("\(place): \"_time\" on some lines but not on others: give every line its time, or none")
        }
        if let time {
            if times == nil { times = [] }
            if let last = times?.last, time < last { throw ValidationError("\(place): \"_time\" \(time) is before the line above's \(last)") }
            times?.append(time)
        }
        requests.append(try SwerveClient.makeInferRequest(model: model, version: version, inputs: tensors, raw: !typed).serializedBytes())
    }
    guard !requests.isEmpty else { throw ValidationError("--inputs file:\(path): no requests in it") }
    return (requests, times.map { t in t.map { $0 - t[0] } })
}

/// The members of a one-level JSON object, each value as its JSON text: `{"a": [[1]], "b": ["x"]}`
/// gives [("a", "[[1]]"), ("b", "[\"x\"]")]. Keys with escapes are not supported (input names
/// have none). nil when the text is not such an object.
func topLevelMembers(_ text: String) -> [(String, String)]? {
    let b = Array(text.utf8)
    var i = 0
    func skip() { while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0D || b[i] == 0x0A { i += 1 } }
    skip()
    guard i < b.count, b[i] == UInt8(ascii: "{") else { return nil }
    i += 1
    var members: [(String, String)] = []
    while true {
        skip()
        guard i < b.count else { return nil }
        if b[i] == UInt8(ascii: "}") && members.isEmpty { i += 1; break }
        guard b[i] == UInt8(ascii: "\"") else { return nil }
        let keyStart = i + 1
        i += 1
        while i < b.count, b[i] != UInt8(ascii: "\"") { if b[i] == UInt8(ascii: "\\") { return nil }; i += 1 }
        guard i < b.count else { return nil }
        let key = String(decoding: b[keyStart..<i], as: UTF8.self)
        i += 1
        skip()
        guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        skip()
        let valueStart = i
        var depth = 0
        var inString = false
        while i < b.count {
            let c = b[i]
            if inString {
                if c == UInt8(ascii: "\\") { i += 1 } else if c == UInt8(ascii: "\"") { inString = false }
            } else if c == UInt8(ascii: "\"") {
                inString = true
            } else if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") {
                depth += 1
            } else if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                if depth == 0 { break }
                depth -= 1
            } else if c == UInt8(ascii: ","), depth == 0 {
                break
            }
            i += 1
        }
        guard i < b.count, depth == 0, !inString else { return nil }
        members.append((key, String(decoding: b[valueStart..<i], as: UTF8.self)))
        if b[i] == UInt8(ascii: ",") { i += 1; continue }
        guard b[i] == UInt8(ascii: "}") else { return nil }
        i += 1
        break
    }
    skip()
    return i == b.count ? members : nil
}

// MARK: - The server's PathStatistics

/// `swerve.v1.ServingInsights/PathStatistics` for one model version, as the report keeps it.
struct BenchPathFigures: Codable, Sendable {
    var name: String
    var version: String
    var mode: String
    var activePath: String
    var tableCells: UInt64
    var tableBytes: UInt64
    var tableBuildMs: UInt64
    var tableLookups: UInt64
    var tableFallbacks: UInt64
    var cacheHits: UInt64
    var cacheMisses: UInt64
    var cacheEvictions: UInt64
    var cacheBytes: UInt64
    var cacheEntries: UInt64
    var cacheCapacityBytes: UInt64
    var coalesced: UInt64
    var batcherRequests: UInt64
    var pathSwitches: UInt64
    var cardinality: Double
    var peakedness: Double
    /// hits / (hits + misses) of these counters; 0 without lookups.
    var hitRatio: Double

    init(_ s: VersionPathStatistics) {
        name = s.name; version = s.version; mode = s.mode; activePath = s.activePath
        tableCells = s.tableCells; tableBytes = s.tableBytes; tableBuildMs = s.tableBuildMs
        tableLookups = s.tableLookups; tableFallbacks = s.tableFallbacks
        cacheHits = s.cacheHits; cacheMisses = s.cacheMisses; cacheEvictions = s.cacheEvictions
        cacheBytes = s.cacheBytes; cacheEntries = s.cacheEntries; cacheCapacityBytes = s.cacheCapacityBytes
        coalesced = s.coalesced; batcherRequests = s.batcherRequests; pathSwitches = s.pathSwitches
        cardinality = s.cardinality; peakedness = s.peakedness
        hitRatio = cacheHits + cacheMisses == 0 ? 0 : Double(cacheHits) / Double(cacheHits + cacheMisses)
    }

    /// The counters' growth from `before` to `self` (gauges and figures as in `self`).
    func since(_ before: BenchPathFigures) -> BenchPathFigures {
        func d(_ a: UInt64, _ b: UInt64) -> UInt64 { a >= b ? a - b : 0 }
        var x = self
        x.tableLookups = d(tableLookups, before.tableLookups)
        x.tableFallbacks = d(tableFallbacks, before.tableFallbacks)
        x.cacheHits = d(cacheHits, before.cacheHits)
        x.cacheMisses = d(cacheMisses, before.cacheMisses)
        x.cacheEvictions = d(cacheEvictions, before.cacheEvictions)
        x.coalesced = d(coalesced, before.coalesced)
        x.batcherRequests = d(batcherRequests, before.batcherRequests)
        x.pathSwitches = d(pathSwitches, before.pathSwitches)
        x.hitRatio = x.cacheHits + x.cacheMisses == 0 ? 0 : Double(x.cacheHits) / Double(x.cacheHits + x.cacheMisses)
        return x
    }
}

/// The server's figures after the run, and their growth over the measured phase.
struct BenchPathReport: Codable, Sendable {
    /// Totals since the version loaded.
    var total: BenchPathFigures
    /// Counter growth over the measured phase (after warm-up).
    var measured: BenchPathFigures?
}

/// Fetches PathStatistics for `model` (`version`, or the highest ready one) over its own
/// connection: `SwerveClient` has no method for `swerve.v1`, and the call is rare. nil when the
/// server does not implement it (e.g. not a Swerve server) or the model is not listed.
func fetchPathStatistics(connection: ClientConnectionOptions, model: String, version: String) async -> (BenchPathFigures?, String?) {
    do {
        let (host, port) = try connection.endpoint()
        let grpc = try await GRPCClientConnection.connect(host: host, port: port, tls: connection.clientTLS)
        let bytes: [UInt8]
        do {
            bytes = try await grpc.unary(
                "/swerve.v1.ServingInsights/PathStatistics", PathStatisticsRequest(name: model, version: version).serializedBytes(),
                timeout: .milliseconds(Int64(connection.timeout * 1000)))
        } catch {
            await grpc.close()
            throw error
        }
        await grpc.close()
        let response = try PathStatisticsResponse(serializedBytes: bytes)
        let entries = response.models.filter { $0.name == model }
        guard let entry = entries.max(by: { (Int($0.version) ?? 0) < (Int($1.version) ?? 0) }) else {
            return (nil, "PathStatistics lists no version of \(model)")
        }
        return (BenchPathFigures(entry), nil)
    } catch let status as GRPCStatus {
        return (nil, "PathStatistics: \(status.code.canonicalName): \(status.message)")
    } catch {
        return (nil, "PathStatistics: \(error)")
    }
}

extension BenchPathReport {
    func printSummary() {
        let t = total
        print("server paths \(t.name) v\(t.version): mode \(t.mode), active path \(t.activePath), path switches \(t.pathSwitches)")
        if let m = measured {
            let lookups = m.cacheHits + m.cacheMisses
            print("  measured phase: cache hits \(m.cacheHits), misses \(m.cacheMisses), hit ratio \(lookups == 0 ? "-" : fixed(m.hitRatio, 4)), coalesced \(m.coalesced), batcher \(m.batcherRequests), table lookups \(m.tableLookups) (fallbacks \(m.tableFallbacks)), evictions \(m.cacheEvictions)")
        }
        print("  since load: cache hits \(t.cacheHits), misses \(t.cacheMisses), hit ratio \(t.cacheHits + t.cacheMisses == 0 ? "-" : fixed(t.hitRatio, 4)), coalesced \(t.coalesced), batcher \(t.batcherRequests), table lookups \(t.tableLookups) (fallbacks \(t.tableFallbacks))")
        if t.cacheCapacityBytes > 0 {
            print("  cache: \(t.cacheEntries) entries, \(t.cacheBytes) of \(t.cacheCapacityBytes) bytes, evictions \(t.cacheEvictions)")
        }
        if t.tableCells > 0 {
            print("  static table: \(t.tableCells) cells, \(t.tableBytes) bytes, built in \(t.tableBuildMs) ms")
        }
        print("  traffic (last auto window): cardinality \(fixed(t.cardinality, 0)), peakedness \(fixed(t.peakedness, 4))")
    }
}
