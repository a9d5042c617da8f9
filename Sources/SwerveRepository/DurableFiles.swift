import Foundation
import SwerveInference

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
package let systemWrite = Glibc.write
package let systemRead = Glibc.read
#elseif canImport(Darwin)
package let systemWrite = Darwin.write
package let systemRead = Darwin.read
#endif

/// The write-fsync-rename primitives every durable store here is built from. A file is durable
/// once it and the directory entry naming it are fsynced; a replacement is atomic because
/// `rename(2)` within one file system is.
package enum DurableFiles {
    package static func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    package static func ioError(_ what: String, _ path: String, _ code: Int32 = errno) -> StorageError {
        StorageError(.io, "\(what) \(path): \(errnoText(code))")
    }

    /// Writes `bytes` to a new or truncated file and fsyncs it. The directory entry is not
    /// fsynced here (callers batch that with `fsyncDirectory`).
    package static func write(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t = 0o644) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ioError("cannot create", path) }
        defer { close(fd) }
        try writeAll(fd: fd, Array(bytes), path: path)
        guard fsync(fd) == 0 else { throw ioError("cannot fsync", path) }
    }

    package static func writeAll(fd: Int32, _ bytes: [UInt8], path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { buf in systemWrite(fd, buf.baseAddress! + done, buf.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("cannot write", path)
            }
            done += n
        }
    }

    /// fsyncs a directory so the entries created, renamed or removed in it survive a crash.
    package static func fsyncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("cannot open directory", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ioError("cannot fsync directory", path) }
    }

    /// Replaces `path` atomically: a reader sees the old contents or the new, never a mix, and
    /// after a crash the file holds one of the two.
    package static func replace(_ bytes: some Collection<UInt8>, at path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let temp = dir + "/." + url.lastPathComponent + ".tmp-" + UUID().uuidString
        do {
            try write(bytes, to: temp)
            guard rename(temp, path) == 0 else { throw ioError("cannot rename \(temp) to", path) }
        } catch {
            unlink(temp)
            throw error
        }
        try fsyncDirectory(dir)
    }

    /// Creates `path` (and missing parents), fsyncing each parent whose entry was added.
    package static func makeDirectory(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw StorageError(.invalidArgument, "\(path) exists and is not a directory") }
            return
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if parent != path { try makeDirectory(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw ioError("cannot create directory", path) }
        try fsyncDirectory(parent)
    }

    /// The bound `read(_:)` applies when its caller names none: 1 GiB. Every file read through
    /// here is a record, a state file or a data batch; none is larger in practice, and a link to
    /// `/dev/zero` must not be read until memory runs out.
    package static let defaultReadLimit = 1 << 30

    /// The contents of the regular file at `path`, or nil when there is none or it cannot be read
    /// (not a regular file, above `limit` bytes, an I/O error). For callers where absent and
    /// unreadable mean the same; others use `readIfPresent`, which says why.
    package static func read(_ path: String, limit: Int = defaultReadLimit) -> Data? {
        try? readIfPresent(path, limit: limit)
    }

    /// The contents of the regular file at `path` (symlinks followed), or nil when nothing is
    /// there. Throws `StorageError` (`.failedPrecondition`) naming the file, what was wrong and
    /// the limit when it is a FIFO, device, socket or directory or holds more than `limit` bytes,
    /// and `.io` when it cannot be read. Never blocks (see `BoundedFile`).
    package static func readIfPresent(_ path: String, limit: Int, what: String = "file") throws(StorageError) -> Data? {
        do {
            return Data(try BoundedFile.read(path, limit: limit, what: what))
        } catch {
            switch error.kind {
            case .missing: return nil
            case .notRegular, .tooLarge: throw StorageError(.failedPrecondition, error.message)
            case .io: throw StorageError(.io, error.message)
            }
        }
    }

    package static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }
}

/// An exclusive `flock(2)` on a lock file, released by `unlock()` or when the process dies
/// (so a killed holder never wedges the next one).
package final class FileLock {
    private var fd: Int32

    /// Blocks until the lock on `path` (created if missing) is held.
    package init(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DurableFiles.ioError("cannot open lock file", path) }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let e = errno
            close(fd)
            throw DurableFiles.ioError("cannot lock", path, e)
        }
    }

    package func unlock() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { unlock() }

    /// Runs `body` holding the lock on `path`.
    package static func withLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let lock = try FileLock(path: path)
        defer { lock.unlock() }
        return try body()
    }
}

/// JSON coding shared by every record written here: sorted keys (stable diffs), ISO 8601 dates.
package enum RecordJSON {
    package static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }

    package static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }

    /// A UTC timestamp usable in a file name and sorting by time: 20250131T235959Z.
    package static func fileTimestamp(_ date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: date)
    }

    /// A short random id for file names.
    package static func shortID() -> String { String(UUID().uuidString.prefix(8)).lowercased() }
}
