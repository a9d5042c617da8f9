import Foundation
import Logging
import Synchronization
import SwerveProto
import SwerveRPC
import SwerveServing
import SwerveStatus
import SwerveTransport

/// `swerve.v1.Feedback/AppendLabels`: labels joined with the logged predictions they judge
/// (`FeedbackJoin`), counted into the versions' online metrics, and, with a trainer
/// (`--feedback-trainer`), appended to its log for the model as examples keyed by request id.
final class FeedbackService: Sendable {
    static let maxLabelsPerCall = 10_000
    static let maxCallsInFlight = 16
    static let forwardTimeout: Duration = .seconds(10)

    let join = FeedbackJoin()
    private let manager: ModelManager
    private let logRoot: URL
    private let trainer: TrainerLink?
    private let logger: Logger
    private let inFlight = Atomic<Int>(0)

    /// AppendExamples calls in flight per AppendLabels call (the trainer commits concurrent
    /// appends in one fsync); 1 keeps a call's examples in the trainer's log in label order.
    let forwardConcurrency: Int

    init(manager: ModelManager, logRoot: URL, trainer: (host: String, port: Int)?, forwardConcurrency: Int, logger: Logger) {
        self.manager = manager
        self.logRoot = logRoot
        self.trainer = trainer.map { TrainerLink(host: $0.host, port: $0.port) }
        self.forwardConcurrency = max(1, forwardConcurrency)
        self.logger = logger
    }

    /// Keeps a logged, answered request with an id for its label (called for the requests the
    /// prediction log samples).
    func record(_ model: ServedModel, id: String, request: [UInt8], response: [UInt8], timeMs: UInt64) {
        guard let layout = model.feedbackLayout, let settings = model.settings.predictionLog, !id.isEmpty else { return }
        join.record(model: model.name, id: id, layout: layout, request: request, response: response, timeMs: timeMs,
                    expiresMs: timeMs + UInt64(settings.joinWindowSeconds) * 1000)
    }

    func appendLabels(_ call: GRPCServerCall) {
        let request: AppendLabelsRequest
        do {
            request = try AppendLabelsRequest(serializedBytes: call.message)
            try InferenceService.checkName(request.modelName)
        } catch {
            return call.finish(GRPCStatus(converting: error))
        }
        guard request.labels.count <= Self.maxLabelsPerCall else {
            return call.finish(GRPCStatus(.invalidArgument, "AppendLabels takes at most \(Self.maxLabelsPerCall) labels per call, got \(request.labels.count)"))
        }
        // Only models this server serves: a made-up name creates no index and no metric series.
        let versions = manager.readyModels().filter { $0.name == request.modelName }
        guard !versions.isEmpty else {
            return call.finish(GRPCStatus(.notFound, "unknown model '\(request.modelName)' (no ready version on this server)"))
        }
        guard versions.contains(where: { $0.feedbackLayout != nil }) else {
            return call.finish(GRPCStatus(.failedPrecondition, "model \(request.modelName) keeps no predictions to join labels with: give it prediction_log (with join_window_seconds > 0) in its config.json"))
        }
        guard inFlight.wrappingAdd(1, ordering: .relaxed).newValue <= Self.maxCallsInFlight else {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            return call.finish(GRPCStatus(.resourceExhausted, "too many AppendLabels calls in progress (at most \(Self.maxCallsInFlight)); try again later"))
        }
        Task {
            defer { inFlight.wrappingSubtract(1, ordering: .relaxed) }
            do {
                call.respond(try await self.answer(request, versions: versions).serializedBytes())
            } catch {
                call.finish(GRPCStatus(converting: error))
            }
        }
    }

    private func answer(_ request: AppendLabelsRequest, versions: [ServedModel]) async throws -> AppendLabelsResponse {
        let model = request.modelName
        if join.needsRestore(model: model) { restore(model, versions: versions) }
        let results = join.join(model: model, labels: request.labels, nowMs: wallClockMs())
        var response = AppendLabelsResponse(forwarded: trainer != nil)
        response.outcomes = zip(request.labels, results).map { l, r in
            LabelOutcome(requestID: l.requestID, outcome: r.outcome.rawValue, version: r.version.map(String.init) ?? "")
        }
        guard let trainer else { return response }
        let jobs: [(Int, Example)] = results.enumerated().compactMap { i, r in
            (r.outcome == .joined || r.outcome == .duplicate) ? r.example.map { (i, $0) } : nil
        }
        guard !jobs.isEmpty else { return response }
        struct Failed: Error { var index: Int; var error: any Error }
        do {
            let link = try await trainer.connection()
            try await withThrowingTaskGroup(of: (Int, UInt64).self) { group in
                var next = 0, running = 0
                while next < jobs.count || running > 0 {
                    while running < forwardConcurrency && next < jobs.count {
                        let (i, example) = jobs[next]
                        let key = "label:" + request.labels[i].requestID
                        group.addTask {
                            do {
                                return (i, try await trainer.append(on: link, model: model, example: example, key: key, timeout: Self.forwardTimeout))
                            } catch {
                                throw Failed(index: i, error: error)
                            }
                        }
                        next += 1
                        running += 1
                    }
                    guard let (i, sequence) = try await group.next() else { break }
                    response.outcomes[i].sequence = sequence
                    running -= 1
                }
            }
        } catch {
            let (index, cause) = (error as? Failed).map { ($0.index, $0.error) } ?? (nil, error)
            let which = index.map { " example \($0) (request \(request.labels[$0].requestID))" } ?? " the examples"
            throw GRPCStatus(.unavailable, "the labels were joined, but the trainer at \(trainer.address) did not take\(which): \(GRPCStatus(converting: cause).message). Retry the call: examples that landed are answered from the trainer's log, not written twice")
        }
        return response
    }

    /// Fills the join index from the model's prediction log on disk (requests answered before
    /// a restart), once: the records still inside their version's join window whose version is
    /// served here.
    private func restore(_ model: String, versions: [ServedModel]) {
        let directory = logRoot.appendingPathComponent(model, isDirectory: true)
        guard FileManager.default.fileExists(atPath: directory.path) else { return }
        let byVersion = Dictionary(versions.map { ($0.version, $0) }, uniquingKeysWith: { a, _ in a })
        let now = wallClockMs()
        do {
            var restored = 0
            for (_, e) in try PredictionLog.read(directory) where !e.id.isEmpty {
                guard let m = byVersion[e.version], let layout = m.feedbackLayout, let settings = m.settings.predictionLog else { continue }
                let expires = e.timeMs + UInt64(settings.joinWindowSeconds) * 1000
                guard expires > now else { continue }
                join.record(model: model, id: e.id, layout: layout, request: [UInt8](e.request), response: [UInt8](e.response),
                            timeMs: e.timeMs, expiresMs: expires, keepNewer: true)
                restored += 1
            }
            logger.info("label join: \(restored) logged predictions of \(model) restored from \(directory.path)")
        } catch {
            logger.warning("label join: could not read the prediction log of \(model) at \(directory.path): \(error)")
        }
    }
}

/// A connection to the trainer that fed-back examples go to, made on first use and again after
/// it fails.
final class TrainerLink: Sendable {
    let host: String
    let port: Int
    var address: String { "\(host):\(port)" }
    private let connection = Mutex<GRPCClientConnection?>(nil)

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// The connection, made now when there is none (calls of one AppendLabels share it).
    func connection() async throws -> GRPCClientConnection {
        if let c = connection.withLock({ $0 }) { return c }
        let made = try await GRPCClientConnection.connect(host: host, port: port)
        let (kept, spare) = connection.withLock { c -> (GRPCClientConnection, GRPCClientConnection?) in
            if let existing = c { return (existing, made) }  // another call connected meanwhile
            c = made
            return (made, nil)
        }
        if let spare { await spare.close() }
        return kept
    }

    /// AppendExamples of one example under `key` on `link`; the sequence number it has in the
    /// trainer's log (the original one when the key had landed before). A lost connection is
    /// dropped, so the next call connects again.
    func append(on link: GRPCClientConnection, model: String, example: Example, key: String, timeout: Duration) async throws -> UInt64 {
        let request = AppendExamplesRequest(modelName: model, examples: [example], idempotencyKey: key).serializedBytes()
        do {
            let bytes = try await link.unary("/swerve.v1.Trainer/AppendExamples", request, timeout: timeout)
            return try AppendExamplesResponse(serializedBytes: bytes).firstSequence
        } catch let status as GRPCStatus where status.code == .unavailable {
            connection.withLock { if $0 === link { $0 = nil } }
            await link.close()
            throw status
        }
    }
}
