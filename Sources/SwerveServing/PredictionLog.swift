import Foundation
import Logging
import Metrics
import SwerveInference
import SwerveRepository
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A sampled, durable log of one model's served requests (`prediction_log` in config.json): for
/// each sampled request the time, the version that answered, the request id and the request and
/// response messages as they went over the wire, for joining with labels that arrive later and
/// for replaying served traffic.
///
/// On disk: `<directory>/segment-<first sequence, 20 digits>.plog`, records in `FramedRecords`'
/// framing whose payload is one JSON object (`Entry`). Written off the request path: `offer`
/// only queues (a full queue drops the record, counted); a writer thread writes what is queued
/// and fsyncs, so every record before the last fsync survives `kill -9` and a torn tail is cut
/// when the log is opened again. Bounded by construction: the segments together never pass
/// `maxBytes` (the oldest segment is deleted first, its records counted as evicted), a record
/// larger than a segment is dropped, and a failing disk (full, read-only) drops records, counted
/// and logged, and is retried a second later; serving never waits for the disk.
public final class PredictionLog: @unchecked Sendable {
    /// One logged request.
    public struct Entry: Codable, Sendable, Equatable {
        public var timeMs: UInt64
        public var model: String
        public var version: Int
        public var id: String
        /// The ModelInferRequest and ModelInferResponse messages, protobuf bytes.
        public var request: Data
        public var response: Data

        public init(timeMs: UInt64, model: String, version: Int, id: String, request: Data, response: Data) {
            self.timeMs = timeMs; self.model = model; self.version = version; self.id = id
            self.request = request; self.response = response
        }

        enum CodingKeys: String, CodingKey {
            case timeMs = "time_ms", model, version, id, request, response
        }
    }

    /// What is counted since the log was opened.
    public struct Counts: Sendable, Equatable {
        public var written: UInt64 = 0
        public var droppedQueueFull: UInt64 = 0
        public var droppedWriteError: UInt64 = 0
        public var droppedOversize: UInt64 = 0
        /// Records deleted with their segment to keep the log within `maxBytes`.
        public var evicted: UInt64 = 0
    }

    public let directory: URL
    /// The bound asked for; `maxBytes` is it raised to the 64 KiB minimum.
    public let requestedMaxBytes: Int
    public let maxBytes: Int
    public let segmentBytes: Int
    public let sampleRate: Double
    /// Records (and their bytes) waiting for the writer, at most; more are dropped.
    public let maxQueued: Int
    public let maxQueuedBytes: Int

    private struct Segment {
        var first: UInt64
        var path: String
        var bytes: Int
        var records: UInt64
    }

    private struct Queue {
        var pending: [(entry: Entry, bytes: Int)] = []
        var pendingBytes = 0
        var stopping = false
        var counts = Counts()
    }

    private let queue = Mutex(Queue())
    private let wake = NSCondition()
    private let finished = DispatchSemaphore(value: 0)
    private let logger: Logger
    // The writer's own state (only the writer thread touches it after init).
    private var segments: [Segment] = []
    private var fd: Int32 = -1
    private var nextSequence: UInt64 = 1
    private var retryAfterNs: UInt64 = 0
    private let written: Counter, dropped: Counter, evicted: Counter

    /// The largest segment file and record read back, whatever `max_bytes` was when they were
    /// written (a record is at most the queue's 64 MiB).
    public static let maxSegmentFileBytes = 1 << 30
    public static let maxRecordBytes = 64 << 20

    /// Opens (creating if needed) and recovers the log in `directory`, then starts its writer.
    public init(directory: URL, model: String, maxBytes: Int, sampleRate: Double, logger: Logger) throws {
        self.directory = directory
        self.requestedMaxBytes = maxBytes
        self.maxBytes = max(maxBytes, 64 << 10)
        self.segmentBytes = max(self.maxBytes / 8, 16 << 10)
        self.sampleRate = min(max(sampleRate, 0), 1)
        self.maxQueued = 4096
        self.maxQueuedBytes = min(self.maxBytes, 64 << 20)
        self.logger = logger
        written = Counter(label: "swerve_prediction_log_records_total", dimensions: [("model", model), ("outcome", "written")])
        dropped = Counter(label: "swerve_prediction_log_records_total", dimensions: [("model", model), ("outcome", "dropped")])
        evicted = Counter(label: "swerve_prediction_log_records_total", dimensions: [("model", model), ("outcome", "evicted")])
        try DurableFiles.makeDirectory(directory.path)
        try recover()
        let t = Thread { [self, model] in
            nameCurrentThread("plog \(model)")
            writerLoop()
            finished.signal()
        }
        t.start()
    }


    /// Queues `entry` for the writer and returns at once; a full queue drops it (counted).
    public func offer(_ entry: Entry) {
        let size = entry.request.count + entry.response.count + entry.id.utf8.count + entry.model.utf8.count + 128
        // nil: dropped; true: the queue was empty, so the writer may be waiting for it.
        let accepted = queue.withLock { q -> Bool? in
            guard !q.stopping, q.pending.count < maxQueued, q.pendingBytes + size <= maxQueuedBytes else {
                q.counts.droppedQueueFull += 1
                return nil
            }
            q.pending.append((entry, size))
            q.pendingBytes += size
            return q.pending.count == 1
        }
        switch accepted {
        case nil: dropped.increment()
        case true?: wake.lock(); wake.signal(); wake.unlock()
        case false?: break  // the writer takes it with what was already queued
        }
    }

    public var counts: Counts { queue.withLock { $0.counts } }

    /// Writes what is queued, fsyncs, and stops the writer (waiting at most `timeout` seconds
    /// for a disk that does not answer). Later offers are dropped.
    public func close(timeout: Double = 10) {
        let first = queue.withLock { q in
            defer { q.stopping = true }
            return !q.stopping
        }
        wake.lock(); wake.signal(); wake.unlock()
        if first { _ = finished.wait(timeout: .now() + timeout) }
    }

    /// The durable records, oldest first (for tests and tools).
    public static func read(_ directory: URL, maxRecordBytes: Int = PredictionLog.maxRecordBytes) throws -> [(sequence: UInt64, entry: Entry)] {
        var out: [(UInt64, Entry)] = []
        for (first, path) in try listSegments(directory.path) {
            guard let data = try DurableFiles.readIfPresent(path, limit: maxSegmentFileBytes, what: "prediction log segment") else { continue }
            for r in FramedRecords.scan([UInt8](data), firstSequence: first, maxRecordBytes: maxRecordBytes).records {
                out.append((r.sequence, try JSONDecoder().decode(Entry.self, from: Data(r.payload))))
            }
        }
        return out
    }

    // MARK: - Writer

    private func writerLoop() {
        while true {
            wake.lock()
            let batch = queue.withLock { q -> [(entry: Entry, bytes: Int)] in
                let b = q.pending
                q.pending = []
                q.pendingBytes = 0
                return b
            }
            let stopping = queue.withLock { $0.stopping }
            if batch.isEmpty && !stopping {
                _ = wake.wait(until: Date(timeIntervalSinceNow: 1))
                wake.unlock()
                continue
            }
            wake.unlock()
            if !batch.isEmpty { write(batch) }
            if stopping && queue.withLock({ $0.pending.isEmpty }) { break }
            // Group commit: what arrives meanwhile is written (one write per segment) and fsynced
            // together, at most 1 / commitInterval times a second.
            if !stopping { usleep(Self.commitIntervalMicros) }
        }
        if fd >= 0 { _ = fsync(fd); _ = closeFile(fd); fd = -1 }
    }

    /// How long the writer gathers records between writes (and fsyncs): a record is on disk at
    /// most about this long after it was offered, plus the write itself.
    static let commitIntervalMicros: useconds_t = 50_000

    /// Writes `batch` (one write per segment it lands in) and fsyncs.
    private func write(_ batch: [(entry: Entry, bytes: Int)]) {
        let now = monotonicNanos()
        if now < retryAfterNs {
            count(\.droppedWriteError, UInt64(batch.count), dropped)
            return
        }
        let encoder = JSONEncoder()
        var buffer: [UInt8] = []
        var buffered: UInt64 = 0
        func flush() throws {
            guard !buffer.isEmpty else { return }
            try DurableFiles.writeAll(fd: fd, buffer, path: segments[segments.count - 1].path)
            segments[segments.count - 1].bytes += buffer.count
            segments[segments.count - 1].records += buffered
            count(\.written, buffered, written)
            buffer.removeAll(keepingCapacity: true)
            buffered = 0
        }
        var wroteAny = false
        for (i, item) in batch.enumerated() {
            guard let payload = try? Array(encoder.encode(item.entry)) else { continue }
            let size = FramedRecords.headerSize + payload.count
            guard size <= segmentBytes else {
                count(\.droppedOversize, 1, dropped)
                continue
            }
            do {
                let total = segments.reduce(0) { $0 + $1.bytes } + buffer.count
                if fd < 0 || segments.isEmpty || segments[segments.count - 1].bytes + buffer.count + size > segmentBytes
                    || total + size > maxBytes {
                    try flush()
                    try makeRoom(for: size)
                }
                buffer += FramedRecords.encode(sequence: nextSequence, payload: payload)
                nextSequence += 1
                buffered += 1
                wroteAny = true
            } catch {
                failed(error, dropping: buffered + UInt64(batch.count - i))
                return
            }
        }
        do {
            try flush()
        } catch {
            failed(error, dropping: buffered)
            return
        }
        if wroteAny && fsync(fd) != 0 {
            failed(DurableFiles.ioError("cannot fsync", segments.last?.path ?? directory.path), dropping: 0)
        }
    }

    /// A write or fsync failed: the open segment may end in part of a record, cut back to its
    /// last whole record when the writer opens it again (after a second); what failed is dropped
    /// and counted.
    private func failed(_ error: any Error, dropping n: UInt64) {
        if n > 0 { count(\.droppedWriteError, n, dropped) }
        logger.warning("prediction log \(directory.path): \(error); dropping records for a second")
        if fd >= 0 { _ = closeFile(fd); fd = -1 }
        // Numbers handed to records that did not land are given out again: the segment goes on
        // after its last whole record.
        if let last = segments.last { nextSequence = last.first + last.records }
        retryAfterNs = monotonicNanos() + 1_000_000_000
    }

    /// Opens the active segment when none is open (cutting whatever follows its last whole
    /// record: a write that failed may have left part of one), rotates when it cannot take
    /// `size` more bytes, and deletes the oldest segments until the log stays within `maxBytes`.
    private func makeRoom(for size: Int) throws {
        if fd < 0, let last = segments.last {
            let f = open(last.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard f >= 0 else { throw DurableFiles.ioError("cannot open", last.path) }
            guard ftruncate(f, off_t(last.bytes)) == 0 else {
                let e = DurableFiles.ioError("cannot truncate", last.path)
                _ = closeFile(f)
                throw e
            }
            fd = f
        }
        if fd < 0 || segments[segments.count - 1].bytes + size > segmentBytes {
            if fd >= 0 { _ = fsync(fd); _ = closeFile(fd); fd = -1 }
            let path = Self.segmentPath(directory.path, first: nextSequence)
            let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
            guard f >= 0 else { throw DurableFiles.ioError("cannot create", path) }
            do { try DurableFiles.fsyncDirectory(directory.path) } catch { _ = closeFile(f); throw error }
            segments.append(Segment(first: nextSequence, path: path, bytes: 0, records: 0))
            fd = f
        }
        var total = segments.reduce(0) { $0 + $1.bytes }
        while total + size > maxBytes, segments.count > 1 {
            let oldest = segments.removeFirst()
            guard unlink(oldest.path) == 0 || errno == ENOENT else { throw DurableFiles.ioError("cannot remove", oldest.path) }
            total -= oldest.bytes
            count(\.evicted, oldest.records, evicted)
        }
    }

    private func count(_ field: WritableKeyPath<Counts, UInt64>, _ n: UInt64, _ counter: Counter) {
        guard n > 0 else { return }
        queue.withLock { $0.counts[keyPath: field] += n }
        counter.increment(by: Int64(n))
    }

    /// Reads the segments, cuts a torn tail off the last, and continues after its last record.
    private func recover() throws {
        let found = try Self.listSegments(directory.path)
        for (i, (first, path)) in found.enumerated() {
            // Limits of any setting, not this one's: segments written under a larger max_bytes
            // are read whole (and the oldest evicted at the next write), not cut as damaged.
            guard let data = try DurableFiles.readIfPresent(path, limit: Self.maxSegmentFileBytes, what: "prediction log segment") else { continue }
            let scan = FramedRecords.scan([UInt8](data), firstSequence: first, maxRecordBytes: Self.maxRecordBytes)
            if scan.validBytes < data.count {
                logger.info("prediction log \(path): \(data.count - scan.validBytes) bytes after byte \(scan.validBytes) are not whole records (\(scan.stopReason ?? "?"))\(i == found.count - 1 ? "; cut" : "; skipped when read")")
            }
            segments.append(Segment(first: first, path: path, bytes: scan.validBytes, records: UInt64(scan.records.count)))
        }
        if let last = segments.last { nextSequence = last.first + last.records }
    }

    static func segmentPath(_ dir: String, first: UInt64) -> String {
        let digits = String(first)
        return dir + "/segment-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".plog"
    }

    static func listSegments(_ dir: String) throws -> [(first: UInt64, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { name -> (UInt64, String)? in
            guard name.hasPrefix("segment-"), name.hasSuffix(".plog"),
                  let first = UInt64(name.dropFirst("segment-".count).dropLast(".plog".count)) else { return nil }
            return (first, dir + "/" + name)
        }.sorted { $0.0 < $1.0 }
    }
}

#if canImport(Glibc)
private let closeFile = Glibc.close
#elseif canImport(Darwin)
private let closeFile = Darwin.close
#endif

/// Which requests a version logs: a deterministic stride of `rate` (every request at 1, none at
/// 0), so the rate holds exactly over any run of requests. One relaxed atomic add per request,
/// and nothing else for those not sampled.
public final class PredictionSampler: Sendable {
    public let rate: Double
    private let seen = Atomic<UInt64>(0)

    public init(rate: Double) { self.rate = min(max(rate, 0), 1) }

    public func take() -> Bool {
        if rate >= 1 { return true }
        guard rate > 0 else { return false }
        let n = Double(seen.wrappingAdd(1, ordering: .relaxed).newValue)
        return (n * rate).rounded(.down) != ((n - 1) * rate).rounded(.down)
    }
}

/// The server's prediction logs, one per model that asks for one (`prediction_log` in its
/// config.json), under `<root>/<model>/`; opened on the model's first answered request, and
/// opened again when its settings change.
public final class PredictionLogs: Sendable {
    public let root: URL
    private let logger: Logger
    private struct State {
        var logs: [String: PredictionLog] = [:]
        /// Models whose log could not be opened, and when to try again.
        var retryAfterNs: [String: UInt64] = [:]
    }
    private let state = Mutex(State())
    /// How long a model whose log could not be opened is served without one before trying again.
    static let retryNs: UInt64 = 30_000_000_000

    public init(root: URL, logger: Logger) {
        self.root = root
        self.logger = logger
    }

    /// The log of `model`'s requests, nil when it cannot be opened (logged; serving goes on
    /// without it, and it is tried again after 30 s).
    public func log(model: String, settings: ModelSettings.PredictionLogSettings) -> PredictionLog? {
        let (log, replaced) = state.withLock { s -> (PredictionLog?, PredictionLog?) in
            if let l = s.logs[model], l.sampleRate == min(max(settings.sampleRate, 0), 1), l.requestedMaxBytes == settings.maxBytes {
                return (l, nil)
            }
            let now = monotonicNanos()
            if let retry = s.retryAfterNs[model], now < retry { return (nil, nil) }
            let old = s.logs.removeValue(forKey: model)
            do {
                let l = try PredictionLog(directory: root.appendingPathComponent(model), model: model,
                                          maxBytes: settings.maxBytes, sampleRate: settings.sampleRate, logger: logger)
                s.logs[model] = l
                s.retryAfterNs[model] = nil
                return (l, old)
            } catch {
                logger.error("prediction log for \(model) under \(root.path) cannot be opened: \(error); serving without it, trying again in 30 s")
                s.retryAfterNs[model] = now + Self.retryNs
                return (nil, old)
            }
        }
        replaced?.close()
        return log
    }

    /// Writes what is queued in every log and stops their writers (at shutdown).
    public func closeAll() {
        let all = state.withLock { s -> [PredictionLog] in
            defer { s.logs.removeAll() }
            return Array(s.logs.values)
        }
        for l in all { l.close() }
    }
}
