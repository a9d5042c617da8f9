import Foundation
import SwerveRepository

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A labelled example as pushed by a client: feature values as text (as a CSV cell would hold
/// them) and the label.
public struct LabelledExample: Codable, Sendable, Equatable {
    public var features: [String: String]
    public var label: String
    /// The producer's id for deduplication, if it has one.
    public var id: String?
    /// On the first example of an append that carried an idempotency key: the key and how many
    /// examples the append wrote (see `ExampleAppender`).
    public var appendKey: String?
    public var appendCount: Int?

    public init(features: [String: String], label: String, id: String? = nil) {
        self.features = features
        self.label = label
        self.id = id
    }
}

/// A write-ahead log of examples: once `append` returns, the example is on stable storage and
/// survives `kill -9` and power loss (as far as the disk honours fsync).
///
/// On disk: `<directory>/segment-<first sequence, 20 digits>.wal` files, each a run of records
///
///     u32 length | u32 crc32(length, sequence, payload) | u64 sequence | payload   (little-endian)
///
/// with sequence numbers consecutive from 1 across segments. The length field's top bit
/// (`continuationFlag`) says more records of the same append follow: an append of several
/// records (`append(batch:)`) is all or nothing across a crash. A new segment starts when the
/// active one would pass `maxSegmentBytes`; the old one is fsynced first, so only the last
/// segment can hold a torn record. Opening the log recovers it: records are read up to the first
/// one that is torn, fails its CRC or breaks the sequence, and the last segment is truncated
/// there. A bad record in an earlier (sealed) segment is not a crash artifact, so opening throws
/// `.corrupt` instead of dropping acknowledged data.
///
/// Appends from many threads share fsyncs (group commit): a thread writes its record, then
/// either runs the next fsync for everyone written so far or waits for the one in flight, and
/// returns only once an fsync that started after its write has finished. If an fsync fails the
/// log refuses every later append (after a failed fsync the kernel may have dropped the dirty
/// pages, so nothing written since can be promised); reopen it to go on.
///
/// One process at a time: the log holds `flock` on `<directory>/.lock` while open.
/// (The framing itself is `FramedRecords`.)
public final class ExampleLog: @unchecked Sendable {
    public struct Options: Sendable {
        public var maxSegmentBytes: Int
        /// Records larger than this are refused on append and treated as corrupt on recovery.
        public var maxRecordBytes: Int
        public init(maxSegmentBytes: Int = 64 << 20, maxRecordBytes: Int = 16 << 20) {
            self.maxSegmentBytes = maxSegmentBytes
            self.maxRecordBytes = maxRecordBytes
        }
    }

    /// One record read back.
    public typealias Record = FramedRecords.Record

    /// What opening the log found.
    public struct Recovery: Sendable, Equatable {
        public var segments: Int
        /// Valid records found.
        public var records: Int
        /// Bytes cut off the end of the last segment (a torn or corrupt tail).
        public var truncatedBytes: Int
        /// Why the tail was cut, when it was.
        public var truncationReason: String?
    }

    public let directory: URL
    public let options: Options
    /// What recovery found when the log was opened.
    public let recovery: Recovery

    static let headerSize = FramedRecords.headerSize
    private let cond = NSCondition()
    // Guarded by `cond`:
    private var segments: [(first: UInt64, path: String)]
    private var fd: Int32
    private var activeSize: Int
    private var nextSequence: UInt64
    private var writtenThrough: UInt64
    private var durableThrough: UInt64
    private var syncing = false
    private var failure: StorageError?
    private var lockFD: Int32

    /// Opens (creating if needed) and recovers the log in `directory`.
    public init(directory: URL, options: Options = Options()) throws {
        self.directory = directory
        self.options = options
        let dir = directory.path
        try DurableFiles.makeDirectory(dir)
        lockFD = open(dir + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw DurableFiles.ioError("cannot open", dir + "/.lock") }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            _ = closeFile(lockFD)
            throw StorageError(.failedPrecondition, "example log \(dir) is open in another process")
        }
        do {
            var found = try Self.listSegments(dir)
            var records = 0
            var truncated = 0
            var reason: String?
            var expected: UInt64 = found.first?.first ?? 1
            for (i, segment) in found.enumerated() {
                guard segment.first == expected else {
                    throw StorageError(.corrupt, "\(segment.path) starts at sequence \(segment.first), expected \(expected)")
                }
                let bytes = try Self.readFile(segment.path, options: options)
                let scan = Self.scan(bytes, firstSequence: segment.first, maxRecordBytes: options.maxRecordBytes)
                records += scan.records.count
                expected = segment.first + UInt64(scan.records.count)
                if scan.validBytes < bytes.count {
                    guard i == found.count - 1 else {
                        throw StorageError(.corrupt, "sealed segment \(segment.path) is damaged at byte \(scan.validBytes): \(scan.stopReason ?? "?")")
                    }
                    guard truncate(segment.path, off_t(scan.validBytes)) == 0 else { throw DurableFiles.ioError("cannot truncate", segment.path) }
                    truncated = bytes.count - scan.validBytes
                    reason = scan.stopReason
                }
            }
            if found.isEmpty {
                let path = Self.segmentPath(dir, first: 1)
                let created = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                guard created >= 0 else { throw DurableFiles.ioError("cannot create", path) }
                _ = closeFile(created)
                try DurableFiles.fsyncDirectory(dir)
                found = [(1, path)]
            }
            let active = found.last!.path
            fd = open(active, O_WRONLY | O_APPEND | O_CLOEXEC)
            guard fd >= 0 else { throw DurableFiles.ioError("cannot open", active) }
            // Make the recovered state (and any truncation) durable before acknowledging more.
            guard fsync(fd) == 0 else { throw DurableFiles.ioError("cannot fsync", active) }
            activeSize = Int(lseek(fd, 0, SEEK_END))
            segments = found
            nextSequence = expected
            writtenThrough = expected - 1
            durableThrough = expected - 1
            recovery = Recovery(segments: found.count, records: records, truncatedBytes: truncated, truncationReason: reason)
        } catch {
            _ = flock(lockFD, LOCK_UN)
            _ = closeFile(lockFD)
            throw error
        }
    }

    deinit { close() }

    /// Closes the log (later appends throw). Everything acknowledged is already durable.
    public func close() {
        cond.lock()
        defer { cond.unlock() }
        while syncing { cond.wait() }
        if fd >= 0 { _ = closeFile(fd); fd = -1 }
        if failure == nil { failure = StorageError(.failedPrecondition, "example log \(directory.path) is closed") }
        if lockFD >= 0 { _ = flock(lockFD, LOCK_UN); _ = closeFile(lockFD); lockFD = -1 }
        cond.broadcast()
    }

    /// The sequence number the next append will get.
    public var nextSequenceNumber: UInt64 { cond.lock(); defer { cond.unlock() }; return nextSequence }

    /// The highest sequence number known durable (0 when the log is empty).
    public var lastDurableSequence: UInt64 { cond.lock(); defer { cond.unlock() }; return durableThrough }

    /// Appends `payload` and returns its sequence number once it is durable.
    @discardableResult
    public func append(_ payload: [UInt8]) throws -> UInt64 {
        try append(batch: [payload])
    }

    /// Appends `payloads` as one all-or-nothing unit, in consecutive sequence numbers, and returns
    /// the first once all are durable. Every record but the last carries the continuation flag
    /// (see the type's comment), so recovery after a crash mid-append cuts the whole unit, never
    /// part of it. A unit never spans segments: one that would not fit in the active segment
    /// starts a new one, and a unit larger than a segment is refused (a single record may still
    /// take up to `maxRecordBytes`, as before).
    @discardableResult
    public func append(batch payloads: [[UInt8]]) throws -> UInt64 {
        guard !payloads.isEmpty else { throw StorageError(.invalidArgument, "an append needs at least one record") }
        var size = 0
        for p in payloads {
            // Below 2^31 whatever the options say: the length field's top bit is the flag.
            guard p.count <= options.maxRecordBytes, p.count < Int(Self.continuationFlag) else {
                throw StorageError(.invalidArgument, "record of \(p.count) bytes exceeds \(options.maxRecordBytes)")
            }
            size += Self.headerSize + p.count
        }
        guard payloads.count == 1 || size <= options.maxSegmentBytes else {
            throw StorageError(.invalidArgument, "an append of \(payloads.count) records and \(size) bytes exceeds the segment size \(options.maxSegmentBytes)")
        }
        cond.lock()
        defer { cond.unlock() }
        if let failure { throw failure }
        while activeSize > 0 && activeSize + size > options.maxSegmentBytes {
            if syncing { cond.wait(); continue }
            try rotateLocked()
        }
        if let failure { throw failure }
        let first = nextSequence
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size)
        for (i, p) in payloads.enumerated() {
            bytes += Self.encode(sequence: first + UInt64(i), payload: p, continues: i < payloads.count - 1)
        }
        do {
            try DurableFiles.writeAll(fd: fd, bytes, path: segments.last!.path)
        } catch {
            // A partial record may be on disk; recovery will cut it, but nothing may follow it.
            failure = StorageError(.failedPrecondition, "example log write failed; reopen the log", cause: error)
            cond.broadcast()
            throw error
        }
        let sequence = first + UInt64(payloads.count) - 1
        nextSequence = sequence + 1
        writtenThrough = sequence
        activeSize += size
        while durableThrough < sequence {
            if let failure { throw failure }
            if syncing {
                cond.wait()
                continue
            }
            syncing = true
            let target = writtenThrough
            let syncFD = fd
            cond.unlock()
            let rc = fsync(syncFD)
            let e = errno
            cond.lock()
            syncing = false
            if rc != 0 {
                failure = StorageError(.failedPrecondition, "example log fsync failed: \(DurableFiles.errnoText(e)); reopen the log")
                cond.broadcast()
                throw failure!
            }
            durableThrough = max(durableThrough, target)
            cond.broadcast()
        }
        return first
    }

    /// Appends one example as JSON.
    @discardableResult
    public func append(example: LabelledExample) throws -> UInt64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try append(Array(encoder.encode(example)))
    }

    /// Durable records with sequence ≥ `sequence`, in order, at most `limit` of them.
    public func read(from sequence: UInt64, limit: Int = Int.max) throws -> [Record] {
        cond.lock()
        let segs = segments
        let last = durableThrough
        cond.unlock()
        var out: [Record] = []
        guard sequence <= last, limit > 0 else { return out }
        let start = max(0, (segs.lastIndex { $0.first <= sequence }) ?? 0)
        for segment in segs[start...] {
            let bytes = try Self.readFile(segment.path, options: options)
            let scan = Self.scan(bytes, firstSequence: segment.first, maxRecordBytes: options.maxRecordBytes)
            for record in scan.records where record.sequence >= sequence {
                if record.sequence > last || out.count >= limit { return out }
                out.append(record)
            }
        }
        return out
    }

    /// Calls `body` with every durable record, oldest first, reading one segment at a time.
    public func forEachRecord(_ body: (Record) throws -> Void) throws {
        cond.lock()
        let segs = segments
        let last = durableThrough
        cond.unlock()
        for segment in segs {
            let bytes: [UInt8]
            do {
                bytes = try Self.readFile(segment.path, options: options)
            } catch let e as StorageError where e.code == .io && !FileManager.default.fileExists(atPath: segment.path) {
                continue  // removed by `removeSegments` since the list was taken
            }
            for record in Self.scan(bytes, firstSequence: segment.first, maxRecordBytes: options.maxRecordBytes).records {
                if record.sequence > last { return }
                try body(record)
            }
        }
    }

    /// Deletes sealed segments whose records all come before `sequence` (everything a
    /// checkpointed consumer has finished with). The active segment is always kept, so sequence
    /// numbers never restart. Returns how many segments were removed.
    @discardableResult
    public func removeSegments(before sequence: UInt64) throws -> Int {
        cond.lock()
        defer { cond.unlock() }
        var removed = 0
        while segments.count > 1 && segments[1].first <= sequence {
            let path = segments.removeFirst().path
            guard unlink(path) == 0 || errno == ENOENT else { throw DurableFiles.ioError("cannot remove", path) }
            removed += 1
        }
        if removed > 0 { try DurableFiles.fsyncDirectory(directory.path) }
        return removed
    }

    /// The segment files, oldest first.
    public var segmentFiles: [URL] {
        cond.lock()
        defer { cond.unlock() }
        return segments.map { URL(fileURLWithPath: $0.path) }
    }

    // MARK: Internals

    private func rotateLocked() throws {
        guard fsync(fd) == 0 else {
            failure = StorageError(.failedPrecondition, "example log fsync failed: \(DurableFiles.errnoText()); reopen the log")
            throw failure!
        }
        durableThrough = writtenThrough
        let path = Self.segmentPath(directory.path, first: nextSequence)
        let newFD = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard newFD >= 0 else { throw DurableFiles.ioError("cannot create", path) }
        do {
            try DurableFiles.fsyncDirectory(directory.path)
        } catch {
            _ = closeFile(newFD)
            throw error
        }
        _ = closeFile(fd)
        fd = newFD
        activeSize = 0
        segments.append((nextSequence, path))
        cond.broadcast()
    }

    static func segmentPath(_ dir: String, first: UInt64) -> String {
        let digits = String(first)
        return dir + "/segment-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".wal"
    }

    static func listSegments(_ dir: String) throws -> [(first: UInt64, path: String)] {
        try FileManager.default.contentsOfDirectory(atPath: dir).compactMap { name -> (UInt64, String)? in
            guard name.hasPrefix("segment-"), name.hasSuffix(".wal"),
                  let first = UInt64(name.dropFirst("segment-".count).dropLast(".wal".count)) else { return nil }
            return (first, dir + "/" + name)
        }.sorted { $0.0 < $1.0 }
    }

    /// A segment's bytes. A segment never holds more than `maxSegmentBytes` or, when its first
    /// record alone is larger, that one record; anything larger (or not a regular file) is refused
    /// rather than read until memory runs out.
    static func readFile(_ path: String, options: Options) throws -> [UInt8] {
        let limit = options.maxSegmentBytes + headerSize + options.maxRecordBytes
        guard let data = try DurableFiles.readIfPresent(path, limit: limit, what: "example log segment") else {
            throw StorageError(.io, "cannot read \(path): it is gone")
        }
        return [UInt8](data)
    }

    /// The record framing (shared with the server's prediction log: `FramedRecords`).
    static let continuationFlag = FramedRecords.continuationFlag

    static func encode(sequence: UInt64, payload: [UInt8], continues: Bool = false) -> [UInt8] {
        FramedRecords.encode(sequence: sequence, payload: payload, continues: continues)
    }

    static func scan(_ bytes: [UInt8], firstSequence: UInt64, maxRecordBytes: Int) -> FramedRecords.Scan {
        FramedRecords.scan(bytes, firstSequence: firstSequence, maxRecordBytes: maxRecordBytes)
    }
}

/// A consumer's position in an `ExampleLog`: the next sequence number to process, replaced
/// atomically so a restarted job resumes exactly where the last checkpoint left it (records
/// after the checkpoint are processed again: at-least-once).
public struct LogCheckpoint: Sendable {
    public let file: URL

    public init(file: URL) { self.file = file }

    struct Stored: Codable {
        var nextSequence: UInt64
        var updated: Date
        enum CodingKeys: String, CodingKey {
            case nextSequence = "next_sequence"
            case updated
        }
    }

    /// The saved next sequence, or nil when no checkpoint was saved yet.
    public func load() throws -> UInt64? {
        guard let data = DurableFiles.read(file.path) else { return nil }
        do {
            return try RecordJSON.decoder().decode(Stored.self, from: data).nextSequence
        } catch {
            throw StorageError(.corrupt, "checkpoint \(file.path) is unreadable", cause: error)
        }
    }

    /// Saves `nextSequence` durably.
    public func save(nextSequence: UInt64) throws {
        try DurableFiles.makeDirectory(file.deletingLastPathComponent().path)
        try DurableFiles.replace(RecordJSON.encoder().encode(Stored(nextSequence: nextSequence, updated: Date())), at: file.path)
    }
}

#if canImport(Glibc)
private let closeFile = Glibc.close
#elseif canImport(Darwin)
private let closeFile = Darwin.close
#endif

extension FramedRecords.Record {
    /// The payload decoded as a `LabelledExample` (for records written by `append(example:)`).
    public func example() throws -> LabelledExample {
        try JSONDecoder().decode(LabelledExample.self, from: Data(payload))
    }
}
