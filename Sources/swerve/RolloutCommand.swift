import ArgumentParser
import Foundation
import SwerveClient
import SwerveRPC
import SwerveRepository
import SwerveRollout
import SwerveStatus
import SwerveTransport

#if canImport(Glibc)
import Glibc
#endif

/// Exit codes of `swerve label` and `swerve rollout`.
enum RolloutExit {
    static let usage: Int32 = 2         // bad arguments, unreachable replicas or store, a refused change
    static let rolledBack: Int32 = 3    // a check failed (or the version did not load): canary cleared, version rolled_back
    static let labelsChanged: Int32 = 4 // another writer changed the labels mid-way; left as they are
}

/// `--repository DIR | --registry HOST:PORT` and `--token-file F`: where labels live.
struct LabelStoreOptions: ParsableArguments {
    @Option(name: .long, help: "The model repository the replicas read (labels.json and metadata.json are written there).")
    var repository: String?

    @Option(name: .long, help: "A swerve.v1.Registry (swerve registry, swerve trainer) the replicas follow, host:port.")
    var registry: String?

    @Option(name: .customLong("token-file"), help: "File holding the admin token of the registry and the replicas (sent as authorization: Bearer).")
    var tokenFile: String?

    @Option(name: .long, help: "Deadline of each call to a replica or the registry, in seconds.")
    var timeout: Double = 10

    @Flag(name: .long, help: "Reach the registry and the replicas over TLS (ALPN h2), trusting the system's CA roots or --ca-cert.")
    var tls = false

    @Option(name: .customLong("ca-cert"), help: "PEM CA certificate(s) that verify the registry's and the replicas' certificates; implies --tls.")
    var caCert: String?

    /// The TLS settings of `--tls`/`--ca-cert`; nil: cleartext.
    var clientTLS: GRPCClientTLS? { clientTLSSettings(tls: tls, caCert: caCert, timeoutSeconds: timeout) }

    /// The store, and a closer for its connection. Throws `UsageFailure` for bad arguments and
    /// an unreachable registry.
    func open() async throws -> (store: any LabelStore, close: @Sendable () async -> Void) {
        guard (repository == nil) != (registry == nil) else { throw UsageFailure("give exactly one of --repository DIR and --registry HOST:PORT") }
        guard timeout > 0 && timeout.isFinite else { throw UsageFailure("--timeout must be positive") }
        if let repository {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: repository, isDirectory: &isDir), isDir.boolValue else {
                throw UsageFailure("--repository \(repository) is not a directory")
            }
            return (RepositoryLabelStore(root: URL(fileURLWithPath: repository, isDirectory: true)), {})
        }
        let (host, port) = try endpoint(registry!, flag: "--registry")
        do {
            let client = try await SwerveClient.connect(host: host, port: port, defaultTimeout: callTimeout, adminToken: try token(), tls: clientTLS)
            return (RegistryLabelStore(client: client, address: registry!, timeout: callTimeout), { await client.close() })
        } catch let s as GRPCStatus {
            throw UsageFailure("cannot reach the registry at \(registry!): \(s.code.canonicalName): \(s.message)")
        }
    }

    /// Opens the store, runs `body` with it, closes it.
    func withStore(_ body: (any LabelStore) async throws -> Int32) async throws -> Int32 {
        let (store, close) = try await open()
        do {
            let code = try await body(store)
            await close()
            return code
        } catch {
            await close()
            throw error
        }
    }

    var callTimeout: Duration { .milliseconds(Int64(timeout * 1000)) }

    func token() throws -> String? {
        guard let tokenFile else { return nil }
        do {
            return try AdminAuthorization.readTokenFile(tokenFile).token
        } catch {
            throw UsageFailure(error.description)
        }
    }

    /// `--replicas H:P,H:P,...` as replicas.
    func replicas(_ list: String) throws -> [any RolloutReplica] {
        let items = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw UsageFailure("--replicas needs at least one host:port") }
        guard items.count <= 256 else { throw UsageFailure("--replicas: at most 256 replicas, not \(items.count)") }
        guard Set(items).count == items.count else { throw UsageFailure("--replicas names a replica twice") }
        return try items.map { item in
            let (host, port) = try endpoint(item, flag: "--replicas")
            return ClientReplica(host: host, port: port, timeout: callTimeout, tls: clientTLS)
        }
    }

    func endpoint(_ text: String, flag: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw UsageFailure("\(flag) takes host:port, not '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }
}

/// A problem with the arguments or with reaching what they name: printed, exit 2.
struct UsageFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs `body`; prints a failure and exits with its code (2 for usage and connection problems).
func runRolloutTool(_ name: String, _ body: () async throws -> Int32) async throws {
    let code: Int32
    do {
        code = try await body()
    } catch let e as UsageFailure {
        printError("swerve \(name): \(e.description)")
        code = RolloutExit.usage
    } catch let e as RolloutError {
        printError("swerve \(name): \(e.message)")
        code = e.kind == .labelsChanged ? RolloutExit.labelsChanged : RolloutExit.usage
    } catch let e as LabelStoreError {
        printError("swerve \(name): \(e.message)")
        code = e.kind == .conflict ? RolloutExit.labelsChanged : RolloutExit.usage
    } catch let e as ValidationError {
        printError("swerve \(name): \(e.message)")
        code = RolloutExit.usage
    }
    if code != 0 { throw ExitCode(code) }
}

/// A progress line on standard output, written at once (a pipe would otherwise hold it).
@Sendable func printLine(_ line: String) { printUnbuffered(line) }

/// "model M (generation G): stable v1, canary v2 at 10%, previous stable v0; reason: …"
func labelsText(_ model: String, _ l: ModelLabels) -> String {
    var s = "model \(model) (generation \(l.generation)): \(RolloutController.describe(l))"
    if let p = l.previousStable { s += ", previous stable v\(p)" }
    if let r = l.reason { s += "; reason: \(r)" }
    if let u = l.updated { s += "; updated \(ISO8601DateFormatter().string(from: u))" }
    return s
}

// MARK: - swerve label

/// `swerve label --model M [stable=V] [canary=W] [--canary-percent P] [--clear-canary]`.
struct LabelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "label",
        abstract: "Show or move a model's version labels (stable, canary, canary share) by hand.",
        discussion: """
            With no change asked for, prints the labels. Otherwise reads them, applies the change and \
            writes them back with a compare-and-set on their generation (another writer in between: \
            exit 4, read again), then prints what was stored. A new canary starts at 0% unless \
            --canary-percent is given; stable=V onto the canary clears the canary. When stable moves, \
            the new stable version is marked serving in its lineage and the old one (if it was \
            serving) validated.

            --replicas H:P,...: refuse (exit 2, nothing written) unless every replica reports the \
            versions the new labels name READY (swerve.v1.ServingInsights/RolloutStatistics); a \
            replica routes to a label only once its version is ready there. To have a version \
            loaded first, label it canary at 0% without --replicas (a labelled version is loaded \
            whatever the version policy), or let the version policy load it.

            Exit codes: 0 done; 2 bad arguments, an unreachable store or replica, a change the store \
            refuses (unknown or rejected version) or versions not ready on --replicas; 4 the labels \
            changed since they were read.
            """)

    @Option(name: .long, help: "The model.")
    var model: String

    @Argument(help: "stable=V and/or canary=W.")
    var assignments: [String] = []

    @Option(name: .customLong("canary-percent"), help: "The canary's share of unversioned requests, 0...100.")
    var canaryPercent: Double?

    @Flag(name: .customLong("clear-canary"), help: "Remove the canary label (its share becomes 0).")
    var clearCanary = false

    @Flag(name: .long, help: "Write without the compare-and-set on the generation.")
    var force = false

    @Option(name: .long, help: "Replicas that must have the named versions READY first, host:port,host:port,...")
    var replicas: String?

    @OptionGroup var store: LabelStoreOptions

    func run() async throws {
        try await runRolloutTool("label") {
            try validateModelNameArgument(model)
            let edit: LabelEdit
            do {
                edit = try LabelEdit(assignments: assignments, canaryPercent: canaryPercent, clearCanary: clearCanary)
            } catch let e as LabelStoreError { throw UsageFailure(e.message) }
            let replicaList = try replicas.map { try store.replicas($0) }
            return try await store.withStore { labelStore in
            let current = try await labelStore.labels(of: model)
            if edit.isEmpty {
                printLine(labelsText(model, current))
                return 0
            }
            var next = edit.applied(to: current)
            next.reason = "set by hand (swerve label)"
            if let replicaList {
                let missing = await versionsNotReady(edit.versionsNamed(in: next), model: model, replicas: replicaList)
                if !missing.isEmpty {
                    throw UsageFailure("not every replica has the versions the labels would name READY; nothing written: \(missing.joined(separator: "; "))")
                }
            }
            let stored = try await labelStore.setLabels(model: model, next, force: force)
            if let s = stored.stable, s != current.stable {
                if try await labelStore.status(model: model, version: s)?.status != .serving {
                    try await labelStore.setStatus(model: model, version: s, .serving, reason: "made stable by hand (swerve label)")
                }
                if let old = current.stable, old != s, try await labelStore.status(model: model, version: old)?.status == .serving {
                    try await labelStore.setStatus(model: model, version: old, .validated, reason: "replaced by v\(s) by hand (swerve label)")
                }
            }
            printLine(labelsText(model, stored))
            return 0
            }
        }
    }
}

// MARK: - swerve rollout

/// `swerve rollout --model M --version V --replicas ...`: the canary rollout controller.
struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "Take a model version to every replica as a canary, step by step, and promote it or roll it back on measured evidence.",
        discussion: """
            1. Reads the labels. Without a stable label, stable becomes the version the replicas answer \
            unversioned requests with now. Writes canary=V at 0% and waits until every replica reports V \
            READY (a replica that reports it UNAVAILABLE, or --ready-timeout: stop before any traffic \
            moves, roll back).
            2. Per step: sets the canary share, waits until every replica applies it (--apply-timeout), \
            reads every replica's RolloutStatistics, bakes, reads again, and compares canary with stable \
            on that window, summed over replicas: error rate (fail when the canary's exceeds stable's by \
            more than --max-error-rate), p99 from the summed latency histograms (fail when canary/stable \
            > --max-p99-ratio), prediction shift (class frequencies: total variation distance; scores: \
            Kolmogorov-Smirnov distance over the score histogram; fail when > --max-prediction-shift and \
            significant: chi-square / KS test p-value below --shift-significance). \
            At 100% stable takes no traffic: its figures come from the last window that had enough \
            stable requests (or, resumed at 100%, from its counters since it loaded). A side with fewer \
            than --min-requests requests in the window: bake on, up to 4 x --bake, then roll back with \
            "insufficient traffic" (--min-requests 0: judge whatever arrived, but never a side with no \
            request at all).
            3. Promotes (stable=V, canary cleared, V serving and the old stable validated in their \
            lineage), or on any failed check clears the canary (share 0) in one write and marks V \
            rolled_back with the reason and figures.

            One progress line per step with both sides' figures. Safe to interrupt (SIGINT, SIGTERM, \
            kill) and run again: it resumes from the labels it finds (canary V: from the step it was in; \
            stable V: done; another canary: refused unless --force). A version rolled back before is \
            refused unless --force.

            Exit codes: 0 promoted, or V was stable already; 2 bad arguments, an unreachable replica or \
            store before anything changed, a refused start (another canary, V rolled back before, no \
            stable to compare with); 3 rolled back (reason printed and recorded in V's lineage); 4 \
            another writer changed the labels during the rollout (left as they are; run again to \
            continue); 130 / 143 interrupted by SIGINT / SIGTERM (labels left as they are; run again \
            to resume).
            """)

    @Option(name: .long, help: "The model.")
    var model: String

    @Option(name: .long, help: "The version to roll out.")
    var version: Int

    @Option(name: .long, help: "The replicas, host:port,host:port,... (each answers RolloutStatistics).")
    var replicas: String

    @Option(name: .long, help: "Canary shares in percent, ascending.")
    var steps: String = "5,25,50,100"

    @Option(name: .long, help: "Each step's window: 30s, 2m, 500ms (a number: seconds).")
    var bake: String = "30s"

    @Option(name: .customLong("max-error-rate"), help: "Most the canary's error rate may exceed stable's (0.001 = 0.1 point).")
    var maxErrorRate: Double = 0.001

    @Option(name: .customLong("max-p99-ratio"), help: "Most canary p99 / stable p99 may be.")
    var maxP99Ratio: Double = 1.5

    @Option(name: .customLong("max-prediction-shift"), help: "Most the prediction distributions may differ (TVD for classes, KS for scores), 0...1.")
    var maxPredictionShift: Double = 0.1

    @Option(name: .customLong("shift-significance"), help: "A shift above --max-prediction-shift fails only when its p-value (chi-square for classes, KS for scores) is below this, so chance differences in small windows do not roll back a good version.")
    var shiftSignificance: Double = 0.001

    @Option(name: .customLong("min-requests"), help: "Fewest requests each side needs in a window (0: any, but at least one).")
    var minRequests: Int = 50

    @Option(name: .customLong("ready-timeout"), help: "How long every replica may take to have the version READY.")
    var readyTimeout: String = "5m"

    @Option(name: .customLong("apply-timeout"), help: "How long every replica may take to apply a label change, or to answer a window's reads.")
    var applyTimeout: String = "60s"

    @Flag(name: .long, help: "Take over another canary, or try again a version that was rolled back.")
    var force = false

    @Flag(name: .customLong("dry-run"), help: "Print the plan (labels, replicas, steps, gates) and change nothing.")
    var dryRun = false

    @OptionGroup var store: LabelStoreOptions

    func options() throws -> RolloutOptions {
        try validateModelNameArgument(model)
        var o = RolloutOptions(model: model, version: version)
        o.steps = try steps.split(separator: ",").map { part in
            guard let v = Double(part.trimmingCharacters(in: .whitespaces)) else { throw UsageFailure("--steps takes numbers separated by commas, not '\(steps)'") }
            return v
        }
        o.bake = try parseDuration(bake, flag: "--bake")
        o.readyTimeout = try parseDuration(readyTimeout, flag: "--ready-timeout")
        o.applyTimeout = try parseDuration(applyTimeout, flag: "--apply-timeout")
        guard minRequests >= 0 else { throw UsageFailure("--min-requests must be 0 or more") }
        o.gates = RolloutGates(maxErrorRate: maxErrorRate, maxP99Ratio: maxP99Ratio, maxPredictionShift: maxPredictionShift,
                               minRequests: UInt64(minRequests), shiftSignificance: shiftSignificance)
        o.force = force
        if let why = o.problem { throw UsageFailure(why) }
        return o
    }

    func run() async throws {
        try await runRolloutTool("rollout") {
            let options = try options()
            let replicaList = try store.replicas(replicas)
            let signals = TerminationSignals()
            return try await store.withStore { labelStore in
            let controller = RolloutController(options: options, store: labelStore, replicas: replicaList, report: printLine)
            if dryRun {
                for line in try await controller.plan() { printLine(line) }
                return 0
            }
            printLine("rollout of \(model) v\(options.version) over \(replicaList.count) replicas: steps \(steps), bake \(bake); gates: \(options.gates.summary)")
            let run = Task { try await controller.run() }
            let watcher = Task { () -> Int32? in
                guard let sig = await signals.nextOrCancelled() else { return nil }
                run.cancel()
                return sig
            }
            let result = await run.result
            watcher.cancel()
            if let sig = await watcher.value, case .failure = result {
                let now = try? await labelStore.labels(of: model)
                printError("swerve rollout: interrupted by \(sig == SIGINT ? "SIGINT" : "SIGTERM"); labels left as they are\(now.map { " (" + RolloutController.describe($0) + ", generation \($0.generation))" } ?? ""). Run the same command again to resume.")
                return 128 + sig
            }
            switch result {
            case .success(.promoted(let from)):
                printLine("done: v\(options.version) is stable\(from.map { " (was v\($0))" } ?? "")")
                return 0
            case .success(.alreadyDone):
                return 0
            case .success(.rolledBack(let reason)):
                printError("swerve rollout: v\(options.version) rolled back: \(reason)")
                return RolloutExit.rolledBack
            case .failure(let error):
                throw error
            }
            }
        }
    }
}

/// "30s", "2m", "500ms", "1h", or a number of seconds.
func parseDuration(_ text: String, flag: String) throws -> Duration {
    let t = text.trimmingCharacters(in: .whitespaces)
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    var number = t, scale = 1.0
    for (suffix, s) in units where t.hasSuffix(suffix) {
        number = String(t.dropLast(suffix.count))
        scale = s
        break
    }
    guard let v = Double(number), v.isFinite, v > 0, v * scale <= 7 * 86400 else {
        throw UsageFailure("\(flag) takes a positive duration like 30s, 2m or 500ms (at most 7 days), not '\(text)'")
    }
    return .milliseconds(Int64((v * scale * 1000).rounded()))
}
