import Dispatch
import Foundation
import Logging
import Metrics
import SwerveProto
import SwerveRPC
import SwerveRepository
import SwerveStatus
import SwerveTransport
import Synchronization

/// Serves `swerve.v1.Registry` over a model repository: Watch (each model's desired state as it
/// changes), FetchVersion (a version's files in chunks with their SHA-256), GetLabels, SetLabels
/// and SetVersionStatus. Run by `swerve registry` and, beside the Trainer, by `swerve trainer`.
///
/// Every call needs the admin token when there is one: model files and desired state are as
/// sensitive as the control plane.
public final class RegistryService: GRPCCallHandler, Sendable {
    /// The prefix of every method path of this service (for routing beside another service).
    public static let methodPrefix = "/swerve.v1.Registry/"

    public let repository: ModelRepository
    public let limits: RegistryLimits
    public let controlPlane: ControlPlaneGuard
    /// The digest cache shared by Watch scans.
    public let files: VersionFiles
    let logger: Logger
    private let hub: WatchHub
    private let fetches = Atomic<Int>(0)
    private let blockingQueue = DispatchQueue(label: "swerve.registry.blocking", attributes: .concurrent)
    private let fetchedBytes = Counter(label: "swerve_registry_served_bytes_total")

    public init(repository: URL, limits: RegistryLimits = RegistryLimits(), logger: Logger, controlPlane: ControlPlaneGuard? = nil) {
        self.repository = ModelRepository(root: repository)
        self.limits = limits
        self.logger = logger
        self.controlPlane = controlPlane ?? .open(logger: logger)
        self.files = VersionFiles(limits: limits)
        self.hub = WatchHub(scanner: RegistryScanner(repository: self.repository, files: files), limits: limits, logger: logger)
    }

    enum Method: String, CaseIterable {
        case watch = "/swerve.v1.Registry/Watch"
        case fetchVersion = "/swerve.v1.Registry/FetchVersion"
        case getLabels = "/swerve.v1.Registry/GetLabels"
        case setLabels = "/swerve.v1.Registry/SetLabels"
        case setVersionStatus = "/swerve.v1.Registry/SetVersionStatus"
        case getVersionStatus = "/swerve.v1.Registry/GetVersionStatus"

        /// Whether the method needs the admin token when there is one. A switch without
        /// `default`: a method added later must say. Every one does: the reads hand out model
        /// files and the desired state.
        var needsToken: Bool {
            switch self {
            case .watch, .fetchVersion, .getLabels, .setLabels, .setVersionStatus, .getVersionStatus: true
            }
        }
    }

    public func handle(_ call: GRPCServerCall) {
        guard let method = Method(rawValue: call.method) else {
            call.finish(GRPCStatus(.unimplemented, "method \(call.method) is not implemented by the Swerve registry"))
            return
        }
        if method.needsToken, !controlPlane.admit(call) { return }
        switch method {
        case .watch: watch(call)
        case .fetchVersion: fetch(call)
        case .getLabels: serveBlocking(call, on: blockingQueue) { (r: LabelsRequest) in try self.getLabels(r) }
        case .setLabels: serveBlocking(call, on: blockingQueue) { (r: SetLabelsRequest) in try self.setLabels(r) }
        case .setVersionStatus: serveBlocking(call, on: blockingQueue) { (r: SetVersionStatusRequest) in try self.setVersionStatus(r) }
        case .getVersionStatus: serveBlocking(call, on: blockingQueue) { (r: FetchVersionRequest) in try self.getVersionStatus(r) }
        }
    }

    /// Ends every Watch stream with UNAVAILABLE (followers reconnect, to this registry once it is
    /// back or to another) and refuses new ones; FetchVersion streams in flight run on until the
    /// server's graceful shutdown ends them.
    public func shutdown() { hub.shutdown() }

    /// Watch streams open now.
    public var watcherCount: Int { hub.count }

    // MARK: - Labels and status

    private func requireModel(_ name: String) throws {
        try ModelRepository.validateModelName(name)
        guard repository.modelExists(name) else { throw GRPCStatus(.notFound, "no model \(name) in the registry") }
    }

    func getLabels(_ r: LabelsRequest) throws -> RegistryLabels {
        try requireModel(r.modelName)
        return RegistryScanner.wire(try repository.labels(of: r.modelName) ?? ModelLabels(), model: r.modelName)
    }

    func setLabels(_ r: SetLabelsRequest) throws -> RegistryLabels {
        let model = r.labels.modelName
        try requireModel(model)
        for (name, v) in [("stable", r.labels.stable), ("canary", r.labels.canary), ("previous_stable", r.labels.previousStable)] where v < 0 {
            throw GRPCStatus(.invalidArgument, "\(name) must be a positive version or 0 (none), not \(v)")
        }
        var labels = RegistryScanner.stored(r.labels)
        labels.updated = nil
        let stored = try ModelRegistry(repository: repository.root).setLabels(model: model, labels, force: r.force)
        logger.info("labels set", metadata: [
            "model": "\(model)", "stable": "\(stored.stable.map(String.init) ?? "-")", "canary": "\(stored.canary.map(String.init) ?? "-")",
            "canary_percent": "\(stored.canaryPercent)", "generation": "\(stored.generation)", "reason": "\(stored.reason ?? "")"])
        return RegistryScanner.wire(stored, model: model)
    }

    func setVersionStatus(_ r: SetVersionStatusRequest) throws -> SetVersionStatusResponse {
        try requireModel(r.modelName)
        guard let status = Lineage.Status(rawValue: r.status) else {
            throw GRPCStatus(.invalidArgument, "status '\(r.status.prefix(64))' is not one of \(Lineage.Status.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard r.version > 0, repository.versions(of: r.modelName).contains(Int(r.version)) else {
            throw GRPCStatus(.notFound, "\(r.modelName) has no complete version \(r.version)")
        }
        try ModelRegistry(repository: repository.root).setStatus(status, model: r.modelName, version: Int(r.version),
                                                                  reason: r.reason.isEmpty ? nil : r.reason)
        logger.info("version status set", metadata: ["model": "\(r.modelName)", "version": "\(r.version)", "status": "\(status.rawValue)"])
        return SetVersionStatusResponse(status: status.rawValue)
    }

    func getVersionStatus(_ r: FetchVersionRequest) throws -> VersionStatus {
        try requireModel(r.modelName)
        guard r.version > 0, repository.versions(of: r.modelName).contains(Int(r.version)) else {
            throw GRPCStatus(.notFound, "\(r.modelName) has no complete version \(r.version)")
        }
        do {
            let l = try repository.lineage(of: r.modelName, version: Int(r.version))
            return VersionStatus(status: l.status.rawValue, reason: l.statusHistory.last?.reason ?? "")
        } catch let e as StorageError where e.code == .notFound {
            return VersionStatus()
        }
    }

    // MARK: - Watch

    private func watch(_ call: GRPCServerCall) {
        let request: RegistryWatchRequest
        do {
            request = try RegistryWatchRequest(serializedBytes: call.message)
            if !request.modelName.isEmpty { try ModelRepository.validateModelName(request.modelName) }
        } catch {
            call.finish(GRPCStatus(converting: error))
            return
        }
        hub.add(call, model: request.modelName.isEmpty ? nil : request.modelName)
    }

    // MARK: - FetchVersion

    private func fetch(_ call: GRPCServerCall) {
        let r: FetchVersionRequest
        do {
            r = try FetchVersionRequest(serializedBytes: call.message)
            try requireModel(r.modelName)
            guard r.version > 0, repository.versions(of: r.modelName).contains(Int(r.version)) else {
                throw GRPCStatus(.notFound, "\(r.modelName) has no complete version \(r.version) (a version is complete once its folder holds model.onnx)")
            }
        } catch {
            call.finish(GRPCStatus(converting: error))
            return
        }
        let running = fetches.add(1, ordering: .relaxed).newValue
        if running > limits.maxConcurrentFetches {
            fetches.subtract(1, ordering: .relaxed)
            call.finish(GRPCStatus(.resourceExhausted, "the registry is already sending \(limits.maxConcurrentFetches) versions; try again shortly"))
            return
        }
        let folder = repository.versionDirectory(r.modelName, version: Int(r.version))
        Task.detached { [self] in
            defer { fetches.subtract(1, ordering: .relaxed) }
            do {
                try await send(folder, on: call)
                call.finish(.ok)
            } catch {
                logger.warning("FetchVersion ended early", metadata: ["model": "\(r.modelName)", "version": "\(r.version)", "reason": "\(error)"])
                let code: GRPCStatusCode = error is RegistryError ? .failedPrecondition : .unavailable
                call.finish(GRPCStatus(code, "cannot send \(r.modelName) version \(r.version): \(error)"))
            }
        }
    }

    /// Sends every regular file of `folder`, chunk by chunk, each file's last chunk with its size and
    /// SHA-256, a chunk only while the client has taken what was sent before (see `maxFetchQueuedBytes`).
    private func send(_ folder: URL, on call: GRPCServerCall) async throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter(VersionFiles.isValidFileName).sorted()
            .filter { name in
                var st = stat()
                return stat(folder.path + "/" + name, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
            }
        if names.count > limits.maxFilesPerVersion {
            throw RegistryError("\(folder.path) holds \(names.count) files, more than \(limits.maxFilesPerVersion)")
        }
        for name in names {
            let reader = try ChunkReader(path: folder.path + "/" + name, limit: limits.maxFileBytes)
            var hasher = SHA256()
            var pending = try reader.next(limits.chunkBytes)
            var offset: UInt64 = 0
            while true {
                let following = pending.isEmpty ? [] : try reader.next(limits.chunkBytes)
                hasher.update(pending)
                var chunk = VersionChunk(file: name, offset: offset, data: pending)
                offset += UInt64(pending.count)
                if following.isEmpty {
                    chunk.last = true
                    chunk.fileSize = offset
                    chunk.sha256 = hasher.finalize().hex
                }
                try await waitForRoom(call)
                call.send(chunk.serializedBytes())
                fetchedBytes.increment(by: Int64(pending.count))
                if chunk.last { break }
                pending = following
            }
        }
    }

    private func waitForRoom(_ call: GRPCServerCall) async throws {
        while true {
            guard let queued = await call.queuedResponseBytes() else { throw CancellationError() }
            if queued <= limits.maxFetchQueuedBytes { return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// The Watch streams and the scan that feeds them: one scan of the repository every
/// `pollInterval` while anyone watches, whose changed models go to every stream.
final class WatchHub: @unchecked Sendable {
    private let scanner: RegistryScanner
    private let limits: RegistryLimits
    private let logger: Logger
    private let queue = DispatchQueue(label: "swerve.registry.watch")
    private let timer: any DispatchSourceTimer
    private let gauge = Gauge(label: "swerve_registry_watchers")
    // Under `lock`.
    private let lock = NSLock()
    private var sessions: [UInt64: WatchSession] = [:]
    private var nextID: UInt64 = 0
    private var closed = false
    // On `queue` only.
    private var current: [String: RegistryModel] = [:]
    private var problems: [String: String] = [:]

    init(scanner: RegistryScanner, limits: RegistryLimits, logger: Logger) {
        self.scanner = scanner
        self.limits = limits
        self.logger = logger
        timer = DispatchSource.makeTimerSource(queue: queue)
        let ms = Int(limits.pollInterval.components.seconds * 1000 + limits.pollInterval.components.attoseconds / 1_000_000_000_000_000)
        timer.schedule(deadline: .now() + .milliseconds(ms), repeating: .milliseconds(max(10, ms)))
        timer.setEventHandler { [weak self] in self?.tick() }
        timer.resume()
    }

    deinit { timer.cancel() }

    var count: Int { lock.withLock { sessions.count } }

    func add(_ call: GRPCServerCall, model: String?) {
        let session = WatchSession(call: call, model: model, limits: limits)
        // The check and the insertion in one lock section: concurrent Watch calls never pass the bound.
        let admitted: Result<UInt64, GRPCStatus> = lock.withLock {
            if closed { return .failure(GRPCStatus(.unavailable, "the registry is shutting down")) }
            if sessions.count >= limits.maxWatchers {
                return .failure(GRPCStatus(.resourceExhausted, "the registry already has \(limits.maxWatchers) Watch streams open; try again later"))
            }
            nextID += 1
            sessions[nextID] = session
            gauge.record(sessions.count)
            return .success(nextID)
        }
        let id: UInt64
        switch admitted {
        case .success(let admittedID): id = admittedID
        case .failure(let refusal):
            session.close()
            call.finish(refusal)
            return
        }
        call.onCancel { [weak self] in self?.remove(id) }
        queue.async {
            self.scan()
            session.offer(Array(self.current.values), endOfSnapshot: true)
        }
    }

    private func remove(_ id: UInt64) {
        let session: WatchSession? = lock.withLock {
            defer { gauge.record(sessions.count) }
            return sessions.removeValue(forKey: id)
        }
        session?.close()
    }

    func shutdown() {
        let all: [WatchSession] = lock.withLock {
            closed = true
            defer { sessions.removeAll(); gauge.record(0) }
            return Array(sessions.values)
        }
        for s in all {
            s.call.finish(GRPCStatus(.unavailable, "the registry is shutting down; reconnect"))
            s.close()
        }
    }

    private func tick() {
        let any = lock.withLock { !sessions.isEmpty }
        guard any else { return }
        scan()
    }

    /// Scans every model, updates `current`, and offers the changed states to every stream.
    private func scan() {
        dispatchPrecondition(condition: .onQueue(queue))
        let names: [String]
        do {
            names = try scanner.repository.modelNames()
        } catch {
            report("", "cannot list the repository: \(error)")
            return
        }
        report("", nil)
        var changed: [RegistryModel] = []
        for name in names {
            do {
                let state = try scanner.state(of: name)
                report(name, nil)
                if current[name] != state {
                    current[name] = state
                    changed.append(state)
                }
            } catch {
                // The last good state stands; a model never seen good is not listed.
                report(name, "\(error)")
            }
        }
        let present = Set(names)
        for gone in current.keys where !present.contains(gone) {
            current[gone] = nil
            problems[gone] = nil
            changed.append(RegistryModel(modelName: gone, removed: true))
        }
        var keep = Set<String>()
        for m in current.values {
            for v in m.versions {
                for f in v.files { keep.insert(scanner.repository.versionDirectory(m.modelName, version: Int(v.version)).path + "/" + f.name) }
            }
        }
        scanner.files.prune(keeping: keep)
        guard !changed.isEmpty else { return }
        let all = lock.withLock { Array(sessions.values) }
        for s in all { s.offer(changed, endOfSnapshot: false) }
    }

    /// Logs a model's problem when it changes (not on every poll).
    private func report(_ model: String, _ problem: String?) {
        guard problems[model] != problem else { return }
        problems[model] = problem
        if let problem {
            logger.warning("registry cannot list a model; followers keep its last good state", metadata: ["model": "\(model)", "reason": "\(problem)"])
        } else if !model.isEmpty {
            logger.info("registry lists the model again", metadata: ["model": "\(model)"])
        }
    }
}

/// One Watch stream: the states waiting for it (at most one per model: a newer state replaces an
/// older one not yet sent), and a task that sends them while the client keeps up.
final class WatchSession: Sendable {
    let call: GRPCServerCall
    private let model: String?
    private let limits: RegistryLimits
    private struct Pending {
        var models: [String: RegistryModel] = [:]
        var endOfSnapshot = false
        /// Whether the snapshot was offered: changes offered before it are in it already.
        var primed = false
    }
    private let pending = Mutex(Pending())
    private let wake: AsyncStream<Void>.Continuation

    init(call: GRPCServerCall, model: String?, limits: RegistryLimits) {
        self.call = call
        self.model = model
        self.limits = limits
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        Task.detached { [self] in
            for await _ in stream {
                if await !drain() { break }
            }
        }
    }

    func offer(_ models: [RegistryModel], endOfSnapshot: Bool) {
        pending.withLock { p in
            guard p.primed || endOfSnapshot else { return }
            for m in models where model == nil || m.modelName == model { p.models[m.modelName] = m }
            if endOfSnapshot { p.endOfSnapshot = true; p.primed = true }
        }
        wake.yield()
    }

    func close() { wake.finish() }

    /// Sends what waits; false once the stream is gone.
    private func drain() async -> Bool {
        while true {
            let batch = pending.withLock { p in defer { p.models = [:]; p.endOfSnapshot = false }; return p }
            if batch.models.isEmpty && !batch.endOfSnapshot { return true }
            for name in batch.models.keys.sorted() {
                guard await room() else { return false }
                call.send(batch.models[name]!.serializedBytes())
            }
            if batch.endOfSnapshot {
                guard await room() else { return false }
                call.send(RegistryModel(endOfSnapshot: true).serializedBytes())
            }
        }
    }

    /// Waits while the client has more than `maxWatchQueuedBytes` unread; false once the stream is gone.
    private func room() async -> Bool {
        while true {
            guard !call.isCancelled, let queued = await call.queuedResponseBytes() else { return false }
            if queued <= limits.maxWatchQueuedBytes { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
