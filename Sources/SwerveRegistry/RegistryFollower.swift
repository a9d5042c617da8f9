import Dispatch
import Foundation
import Logging
import Metrics
import SwerveClient
import SwerveProto
import SwerveRPC
import SwerveRepository
import SwerveStatus
import SwerveTransport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where a follower's registry is and how to reach it (`swerve serve --follow HOST:PORT
/// --follow-token-file F --follow-tls --follow-ca-cert F`).
public struct RegistryFollowOptions: Sendable {
    public var host: String
    public var port: Int
    /// The registry's admin token, sent with every registry call; nil: none.
    public var token: String?
    /// TLS to the registry; nil: cleartext.
    public var tls: GRPCClientTLS?
    /// File and message bounds (a registry's listing beyond them is refused).
    public var limits = RegistryLimits()
    /// The first wait before reconnecting or fetching again after a failure; doubled each time up
    /// to `maxRetryDelay`, back to this after a snapshot was applied.
    public var retryDelay: Duration = .milliseconds(500)
    public var maxRetryDelay: Duration = .seconds(10)
    /// Attempts at fetching one version on one connection before the follower reconnects.
    public var fetchAttempts = 4
    /// A Watch is renewed this often (its deadline), so a registry that vanished without closing
    /// the connection is noticed.
    public var watchRenewal: Duration = .seconds(300)

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `HOST:PORT` (IPv6 as `[::1]:PORT`) split; nil when it is not one.
    public static func parseAddress(_ s: String) -> (host: String, port: Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }
}

/// What a follower does to the server it feeds. `load` brings a model in line with its local
/// folder (loads, warms up, marks ready); `unload` drops a model the registry no longer has.
public struct RegistryFollowerTarget: Sendable {
    public var load: @Sendable (String) throws -> Void
    public var unload: @Sendable (String) throws -> Void
    /// Called once, after the first complete snapshot has been fetched and loaded.
    public var snapshotApplied: @Sendable () -> Void
    public init(load: @escaping @Sendable (String) throws -> Void, unload: @escaping @Sendable (String) throws -> Void,
                snapshotApplied: @escaping @Sendable () -> Void) {
        self.load = load
        self.unload = unload
        self.snapshotApplied = snapshotApplied
    }
}

/// Keeps a local repository in line with a registry: Watch, then for each model's state fetch the
/// versions missing locally (or whose files differ) into `<local>/<model>/.tmp-<version>-<id>/`,
/// verify every file's size and SHA-256 against the chunk trailer and the Watch listing, fsync,
/// rename into place, write config.json then labels.json atomically, load, and only then remove
/// the versions no longer listed. A broken transfer removes its folder and is tried again (with
/// backoff); nothing unverified is ever renamed or loaded. The Watch reconnects with backoff for
/// as long as the follower runs.
public final class RegistryFollower: Sendable {
    public let options: RegistryFollowOptions
    public let repository: ModelRepository
    private let target: RegistryFollowerTarget
    private let logger: Logger
    private let localFiles: VersionFiles
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let applied = Atomic<Bool>(false)
    private let fetchedOK = Counter(label: "swerve_registry_fetches_total", dimensions: [("result", "ok")])
    private let fetchedFailed = Counter(label: "swerve_registry_fetches_total", dimensions: [("result", "failed")])
    private let fetchedBytes = Counter(label: "swerve_registry_fetch_bytes_total")
    private let connected = Gauge(label: "swerve_registry_connected")

    public init(options: RegistryFollowOptions, repository: URL, target: RegistryFollowerTarget, logger: Logger) {
        self.options = options
        self.repository = ModelRepository(root: repository)
        self.target = target
        self.logger = logger
        self.localFiles = VersionFiles(limits: options.limits)
    }

    /// Whether the first snapshot has been applied (everything fetched, every load attempted).
    public var hasAppliedSnapshot: Bool { applied.load(ordering: .acquiring) }

    /// Removes the temporaries a crash left in the local repository (`.tmp-*` under the root and
    /// in every model folder, and `.<file>.tmp-*` of atomic replaces). Call before anything reads
    /// the repository.
    public func removeStaleTemporaries() {
        let fm = FileManager.default
        let root = repository.root.path
        for entry in (try? fm.contentsOfDirectory(atPath: root)) ?? [] {
            if entry.hasPrefix(".tmp-") {
                try? fm.removeItem(atPath: root + "/" + entry)
                logger.info("removed a stale temporary folder", metadata: ["path": "\(root)/\(entry)"])
                continue
            }
            guard ModelRepository.isValidModelName(entry), DurableFiles.isDirectory(root + "/" + entry) else { continue }
            // `.tmp-<version>-…` folders of a fetch, and `.config.json.tmp-…` / `.labels.json.tmp-…`
            // files of an atomic replace (DurableFiles.replace).
            for inner in (try? fm.contentsOfDirectory(atPath: root + "/" + entry)) ?? []
            where inner.hasPrefix(".tmp-") || (inner.hasPrefix(".") && inner.contains(".tmp-")) {
                try? fm.removeItem(atPath: root + "/" + entry + "/" + inner)
                logger.info("removed a stale temporary folder", metadata: ["path": "\(root)/\(entry)/\(inner)"])
            }
        }
    }

    /// Starts following (once).
    public func start() {
        task.withLock { t in
            guard t == nil else { return }
            t = Task.detached { [self] in await run() }
        }
    }

    /// Stops following and waits for the follower to end (a transfer in progress is abandoned and
    /// its temporary folder removed; a load in progress is waited for).
    public func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        await t?.value
    }

    /// Stops following without waiting (a draining server must not wait for a model load).
    /// Whatever a transfer leaves is a `.tmp-*` folder, removed at the next start.
    public func cancel() {
        task.withLock { $0 }?.cancel()
    }

    // MARK: - The Watch loop

    private func run() async {
        var delay = options.retryDelay
        connected.record(0)
        while !Task.isCancelled {
            var client: SwerveClient?
            do {
                let c = try await SwerveClient.connect(
                    host: options.host, port: options.port, defaultTimeout: nil,
                    maxReceiveMessageSize: ModelRepository.maxConfigBytes + (8 << 20), adminToken: options.token, tls: options.tls)
                client = c
                connected.record(1)
                logger.info("following the registry", metadata: ["registry": "\(options.host):\(options.port)"])
                if try await follow(c) { delay = options.retryDelay }
            } catch is CancellationError {
                break
            } catch {
                if Task.isCancelled { break }
                logger.warning("registry follow interrupted; reconnecting", metadata: [
                    "registry": "\(options.host):\(options.port)", "reason": "\(error)", "retry_in": "\(delay)"])
                connected.record(0)
                await client?.close()
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, options.maxRetryDelay)
                continue
            }
            connected.record(0)
            await client?.close()
        }
        connected.record(0)
    }

    /// One Watch: applies the snapshot, then every change. Returns true when the stream ended
    /// cleanly (its renewal deadline) after a snapshot was applied; throws otherwise.
    private func follow(_ client: SwerveClient) async throws -> Bool {
        var inSnapshot = true
        var listed: Set<String> = []
        var failed: [String: String] = [:]
        do {
            for try await m in client.registryWatch(model: "", timeout: options.watchRenewal) {
                try Task.checkCancellation()
                if m.endOfSnapshot {
                    guard inSnapshot else { continue }
                    if !failed.isEmpty {
                        throw RegistryError("the snapshot could not be applied in full: " + failed.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; "))
                    }
                    warnAboutUnlisted(listed)
                    inSnapshot = false
                    if !applied.exchange(true, ordering: .acquiringAndReleasing) {
                        logger.info("registry snapshot applied", metadata: ["models": "\(listed.count)"])
                        target.snapshotApplied()
                    }
                    continue
                }
                if inSnapshot { listed.insert(m.modelName) }
                do {
                    try await apply(m, client)
                } catch let status as GRPCStatus where status.code == .unavailable || status.code == .cancelled {
                    throw status   // the connection is gone: reconnect
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    logger.error("cannot apply a model's state from the registry", metadata: ["model": "\(m.modelName)", "reason": "\(error)"])
                    if inSnapshot { failed[m.modelName] = "\(error)" } else { throw error }
                }
            }
        } catch let status as GRPCStatus where status.code == .deadlineExceeded && !inSnapshot {
            return true   // the renewal: watch again at once
        }
        if inSnapshot { throw RegistryError("the registry ended the Watch before its snapshot was complete") }
        return true
    }

    // MARK: - Applying one model's state

    /// Checks what a registry sent before anything touches the disk.
    func validate(_ m: RegistryModel) throws {
        try ModelRepository.validateModelName(m.modelName)
        let limits = options.limits
        if m.config.count > ModelRepository.maxConfigBytes {
            throw RegistryError("config.json of \(m.modelName) is \(m.config.count) bytes, more than \(ModelRepository.maxConfigBytes)")
        }
        if m.versions.count > limits.maxVersionsPerModel {
            throw RegistryError("\(m.modelName) lists \(m.versions.count) versions, more than \(limits.maxVersionsPerModel)")
        }
        for v in m.versions {
            guard v.version > 0, v.version <= Int64(Int32.max) else { throw RegistryError("\(m.modelName) lists version \(v.version)") }
            if v.files.count > limits.maxFilesPerVersion {
                throw RegistryError("\(m.modelName) version \(v.version) lists \(v.files.count) files, more than \(limits.maxFilesPerVersion)")
            }
            guard v.files.contains(where: { $0.name == ModelRepository.modelFileName }) else {
                throw RegistryError("\(m.modelName) version \(v.version) lists no \(ModelRepository.modelFileName)")
            }
            var names = Set<String>()
            for f in v.files {
                guard VersionFiles.isValidFileName(f.name), names.insert(f.name).inserted else {
                    throw RegistryError("\(m.modelName) version \(v.version) lists a bad or repeated file name \(ModelRepository.quotedName(f.name))")
                }
                guard f.size <= UInt64(limits.maxFileBytes) else {
                    throw RegistryError("\(m.modelName) version \(v.version): \(f.name) is \(f.size) bytes, more than the limit of \(limits.maxFileBytes) (--max-model-bytes)")
                }
                guard f.sha256.utf8.count == 64, f.sha256.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                    throw RegistryError("\(m.modelName) version \(v.version): \(f.name) has no SHA-256")
                }
            }
        }
        if let l = m.labels, !(l.canaryPercent >= 0 && l.canaryPercent <= 100) {
            throw RegistryError("\(m.modelName): canary_percent \(l.canaryPercent) is not within 0...100")
        }
    }

    func apply(_ m: RegistryModel, _ client: SwerveClient) async throws {
        try validate(m)
        let model = m.modelName
        let dir = repository.modelDirectory(model).path
        if m.removed {
            try await removeModel(model)
            return
        }
        try DurableFiles.makeDirectory(dir)
        for v in m.versions where !holds(model, v) {
            try await fetchWithRetries(model, v, client)
        }
        // config.json, then labels.json (labels last: they name versions now all on disk).
        let configPath = repository.configFile(model).path
        if m.config.isEmpty {
            if FileManager.default.fileExists(atPath: configPath) { try remove(configPath, in: dir) }
        } else if DurableFiles.read(configPath, limit: ModelRepository.maxConfigBytes).map(Array.init) != m.config {
            try DurableFiles.replace(m.config, at: configPath)
        }
        let labelsPath = repository.labelsFile(model).path
        if let l = m.labels, l.generation > 0 {
            let wanted = RegistryScanner.stored(l)
            if (try? repository.labels(of: model)) ?? nil != wanted {
                try DurableFiles.replace(wanted.jsonData(), at: labelsPath)
            }
        } else if FileManager.default.fileExists(atPath: labelsPath) {
            try remove(labelsPath, in: dir)
        }
        let load = target.load
        let loadError: (any Error)? = await withCheckedContinuation { done in
            DispatchQueue.global().async {
                do { try load(model); done.resume(returning: nil) } catch { done.resume(returning: error) }
            }
        }
        if let loadError {
            logger.error("a followed model failed to load", metadata: ["model": "\(model)", "reason": "\(loadError)"])
        }
        // Only now: the load no longer needs the versions the registry stopped listing.
        let keep = Set(m.versions.map { Int($0.version) })
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard let v = ModelRepository.versionNumber(folderName: entry), !keep.contains(v) else { continue }
            try removeFolder(dir + "/" + entry, in: dir)
            logger.info("removed a version the registry no longer lists", metadata: ["model": "\(model)", "version": "\(v)"])
        }
    }

    /// Whether the local folder of `v` holds exactly the listed files, by size and SHA-256.
    func holds(_ model: String, _ v: RegistryVersion) -> Bool {
        let folder = repository.versionDirectory(model, version: Int(v.version))
        guard DurableFiles.isDirectory(folder.path), let local = try? localFiles.list(folder) else { return false }
        return local == v.files.sorted { $0.name < $1.name }
    }

    private func fetchWithRetries(_ model: String, _ v: RegistryVersion, _ client: SwerveClient) async throws {
        var delay = options.retryDelay
        var attempt = 1
        while true {
            do {
                try await fetch(model, v, client)
                fetchedOK.increment()
                logger.info("fetched a version from the registry", metadata: [
                    "model": "\(model)", "version": "\(v.version)", "bytes": "\(v.files.reduce(0) { $0 + $1.size })"])
                return
            } catch {
                fetchedFailed.increment()
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                if let s = error as? GRPCStatus, s.code == .unavailable || s.code == .cancelled || s.code == .notFound
                    || s.code == .unauthenticated || s.code == .permissionDenied || attempt >= options.fetchAttempts {
                    throw error
                }
                logger.warning("fetching a version failed; trying again", metadata: [
                    "model": "\(model)", "version": "\(v.version)", "attempt": "\(attempt)", "reason": "\(error)", "retry_in": "\(delay)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, options.maxRetryDelay)
                attempt += 1
            }
        }
    }

    /// One transfer of `v` into a temporary folder, verified file by file, then renamed into place.
    /// On any failure the temporary folder is removed and nothing else has changed.
    func fetch(_ model: String, _ v: RegistryVersion, _ client: SwerveClient) async throws {
        let dir = repository.modelDirectory(model).path
        let temporary = dir + "/.tmp-\(v.version)-" + String(UUID().uuidString.prefix(8)).lowercased()
        guard mkdir(temporary, 0o755) == 0 else { throw DurableFiles.ioError("cannot create", temporary) }
        var renamed = false
        defer { if !renamed { try? FileManager.default.removeItem(atPath: temporary) } }

        let expected = Dictionary(uniqueKeysWithValues: v.files.map { ($0.name, $0) })
        let total = v.files.reduce(UInt64(0)) { $0 + $1.size }
        let maxChunk = max(options.limits.chunkBytes, 1 << 20)
        var done = Set<String>()
        var current: (name: String, fd: Int32, written: UInt64, hasher: SHA256)?
        defer { if let c = current { close(c.fd) } }
        let timeout = Duration.seconds(60) + .seconds(Int64(total >> 20))   // at least 1 MiB/s
        for try await chunk in client.fetchVersion(model: model, version: v.version, timeout: timeout) {
            try Task.checkCancellation()
            guard let want = expected[chunk.file], !done.contains(chunk.file) else {
                throw RegistryError("the registry sent \(ModelRepository.quotedName(chunk.file)), which the Watch did not list (or twice)")
            }
            if current?.name != chunk.file {
                guard current == nil else { throw RegistryError("\(current!.name) ended without its last chunk") }
                guard chunk.offset == 0 else { throw RegistryError("\(chunk.file) began at offset \(chunk.offset)") }
                let path = temporary + "/" + chunk.file
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw DurableFiles.ioError("cannot create", path) }
                current = (chunk.file, fd, 0, SHA256())
            }
            guard var c = current else { continue }
            guard chunk.offset == c.written else { throw RegistryError("\(chunk.file): chunk at offset \(chunk.offset), expected \(c.written)") }
            guard chunk.data.count <= maxChunk else { throw RegistryError("\(chunk.file): a chunk of \(chunk.data.count) bytes, more than \(maxChunk)") }
            guard c.written + UInt64(chunk.data.count) <= want.size else {
                throw RegistryError("\(chunk.file): more than the \(want.size) bytes the Watch listed")
            }
            try DurableFiles.writeAll(fd: c.fd, chunk.data, path: temporary + "/" + chunk.file)
            c.hasher.update(chunk.data)
            c.written += UInt64(chunk.data.count)
            fetchedBytes.increment(by: Int64(chunk.data.count))
            current = c
            if chunk.last {
                let digest = c.hasher.finalize().hex
                guard c.written == want.size, chunk.fileSize == want.size else {
                    throw RegistryError("\(chunk.file): \(c.written) bytes received, trailer says \(chunk.fileSize), the Watch listed \(want.size)")
                }
                guard digest == chunk.sha256, digest == want.sha256 else {
                    throw RegistryError("\(chunk.file): SHA-256 \(digest) of the bytes received, trailer says \(chunk.sha256), the Watch listed \(want.sha256)")
                }
                guard fsync(c.fd) == 0 else { throw DurableFiles.ioError("cannot fsync", temporary + "/" + chunk.file) }
                close(c.fd)
                current = nil
                done.insert(chunk.file)
            }
        }
        if let c = current { throw RegistryError("\(c.name) ended without its last chunk") }
        let missing = Set(expected.keys).subtracting(done)
        guard missing.isEmpty else { throw RegistryError("the registry did not send \(missing.sorted().joined(separator: ", "))") }
        try DurableFiles.fsyncDirectory(temporary)

        let target = repository.versionDirectory(model, version: Int(v.version)).path
        if FileManager.default.fileExists(atPath: target) {
            // A version whose files changed (its lineage status, usually): the old folder moves
            // aside, the new one takes its name, the old one goes.
            let aside = dir + "/.tmp-old-\(v.version)-" + String(UUID().uuidString.prefix(8)).lowercased()
            guard rename(target, aside) == 0 else { throw DurableFiles.ioError("cannot move aside", target) }
            guard rename(temporary, target) == 0 else {
                let e = errno
                _ = rename(aside, target)
                throw DurableFiles.ioError("cannot rename \(temporary) to", target, e)
            }
            renamed = true
            try DurableFiles.fsyncDirectory(dir)
            try? FileManager.default.removeItem(atPath: aside)
        } else {
            guard rename(temporary, target) == 0 else { throw DurableFiles.ioError("cannot rename \(temporary) to", target) }
            renamed = true
            try DurableFiles.fsyncDirectory(dir)
        }
    }

    // MARK: - Removing

    /// Local models a snapshot does not list are kept and named in a warning: a registry lists
    /// only models it can read, so a config.json broken for a moment there must not take a model
    /// off every replica. A model the registry reports `removed` while followed is removed.
    private func warnAboutUnlisted(_ listed: Set<String>) {
        let unlisted = ((try? repository.modelNames()) ?? []).filter { !listed.contains($0) }
        if !unlisted.isEmpty {
            logger.warning("local models the registry does not list are kept; remove their folders by hand if they are gone for good",
                           metadata: ["models": "\(unlisted.joined(separator: ","))"])
        }
    }

    private func removeModel(_ model: String) async throws {
        let dir = repository.modelDirectory(model).path
        guard DurableFiles.isDirectory(dir) else { return }
        let unload = target.unload
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { try? unload(model); done.resume() }
        }
        try removeFolder(dir, in: repository.root.path)
        logger.info("removed a model the registry no longer has", metadata: ["model": "\(model)"])
    }

    /// Renames `path` to a hidden `.tmp-` name (readers stop seeing it at once; a crash leaves only
    /// a temporary folder, removed at the next start), then deletes it.
    private func removeFolder(_ path: String, in parent: String) throws {
        let aside = parent + "/.tmp-del-" + String(UUID().uuidString.prefix(8)).lowercased()
        guard rename(path, aside) == 0 else { throw DurableFiles.ioError("cannot move aside", path) }
        try DurableFiles.fsyncDirectory(parent)
        try? FileManager.default.removeItem(atPath: aside)
    }

    private func remove(_ path: String, in parent: String) throws {
        guard unlink(path) == 0 || errno == ENOENT else { throw DurableFiles.ioError("cannot remove", path) }
        try DurableFiles.fsyncDirectory(parent)
    }
}
