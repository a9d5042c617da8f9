import Foundation
import SwerveRepository

/// Pull ingest: a scheduled scan of a directory for new data files (CSV by default).
///
/// A file is identified by name, size and modification time; the ones handled are listed in a
/// state file, replaced atomically after each file, so a restarted job neither skips a file nor
/// (except the one it was handling when it died: at-least-once) handles one twice. A file that
/// changes after it was handled is handled again. Hidden files and files modified in the last
/// `settleTime` seconds are left for a later scan: producers should write `.name.tmp` and rename,
/// or at least finish within the settle time.
public final class DirectoryIngest: @unchecked Sendable {
    public struct FileRecord: Codable, Sendable, Equatable {
        public var size: Int
        /// Modification time, seconds since 1970.
        public var modified: Double
        public var processed: Date
    }

    struct State: Codable {
        var files: [String: FileRecord]
    }

    public let directory: URL
    public let stateFile: URL
    public let fileExtension: String
    public let settleTime: TimeInterval
    private let lock = NSLock()
    private var state: State

    public init(directory: URL, stateFile: URL, fileExtension: String = "csv", settleTime: TimeInterval = 2) throws {
        self.directory = directory
        self.stateFile = stateFile
        self.fileExtension = fileExtension
        self.settleTime = settleTime
        if let data = DurableFiles.read(stateFile.path) {
            do {
                state = try RecordJSON.decoder().decode(State.self, from: data)
            } catch {
                throw StorageError(.corrupt, "ingest state \(stateFile.path) is unreadable", cause: error)
            }
        } else {
            state = State(files: [:])
        }
    }

    /// Files ready to handle: not hidden, with the extension, settled, and not handled in their
    /// current size and modification time. Sorted by name (name files by time to get time order).
    public func pendingFiles(now: Date = Date()) throws -> [URL] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw StorageError(.notFound, "cannot list \(directory.path)", cause: error)
        }
        lock.lock()
        defer { lock.unlock() }
        return names.sorted().compactMap { name in
            guard !name.hasPrefix("."), (name as NSString).pathExtension == fileExtension else { return nil }
            let url = directory.appendingPathComponent(name)
            guard let identity = Self.identity(url), now.timeIntervalSince1970 - identity.modified >= settleTime else { return nil }
            if let done = state.files[name], done.size == identity.size, done.modified == identity.modified { return nil }
            return url
        }
    }

    /// Records `file` as handled (durably) in its current size and modification time.
    public func markProcessed(_ file: URL) throws {
        guard let identity = Self.identity(file) else { throw StorageError(.notFound, "cannot stat \(file.path)") }
        lock.lock()
        defer { lock.unlock() }
        var next = state
        next.files[file.lastPathComponent] = FileRecord(size: identity.size, modified: identity.modified, processed: Date())
        try DurableFiles.makeDirectory(stateFile.deletingLastPathComponent().path)
        try DurableFiles.replace(RecordJSON.encoder().encode(next), at: stateFile.path)
        state = next
    }

    /// Whether `file` is recorded as handled in its current form.
    public func isProcessed(_ file: URL) -> Bool {
        guard let identity = Self.identity(file) else { return false }
        lock.lock()
        defer { lock.unlock() }
        guard let done = state.files[file.lastPathComponent] else { return false }
        return done.size == identity.size && done.modified == identity.modified
    }

    /// One scan: hands each pending file to `handle`, marking it handled when `handle` returns.
    /// A throwing `handle` stops the scan (the file stays pending and is tried again next scan).
    /// Returns the files handled.
    @discardableResult
    public func pollOnce(now: Date = Date(), _ handle: (URL) throws -> Void) throws -> [URL] {
        var done: [URL] = []
        for file in try pendingFiles(now: now) {
            try handle(file)
            try markProcessed(file)
            done.append(file)
        }
        return done
    }

    /// Scans every `interval` until the task is cancelled. Errors from a scan go to `onError`
    /// and the schedule goes on.
    public func run(every interval: Duration, onError: @Sendable (any Error) -> Void = { _ in },
                    _ handle: @Sendable (URL) throws -> Void) async {
        while !Task.isCancelled {
            do {
                try pollOnce(handle)
            } catch {
                onError(error)
            }
            try? await Task.sleep(for: interval)
        }
    }

    static func identity(_ url: URL) -> (size: Int, modified: Double)? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
              let size = (attributes[.size] as? NSNumber)?.intValue,
              let modified = attributes[.modificationDate] as? Date else { return nil }
        return (size, modified.timeIntervalSince1970)
    }
}
