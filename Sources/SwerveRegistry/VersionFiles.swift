import Foundation
import SwerveInference
import SwerveProto
import SwerveRepository
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The bounds of the registry and of a follower. One value for both ends, so what a registry
/// lists a follower accepts.
public struct RegistryLimits: Sendable {
    /// Watch streams open at once; one more is refused RESOURCE_EXHAUSTED.
    public var maxWatchers = 64
    /// FetchVersion streams running at once; one more is refused RESOURCE_EXHAUSTED.
    public var maxConcurrentFetches = 16
    /// How often the repository is scanned for changes while someone watches.
    public var pollInterval: Duration = .milliseconds(300)
    /// The most file bytes in one VersionChunk.
    public var chunkBytes = 256 << 10
    /// The most regular files a version folder may hold (model, lineage, statistics, extras).
    public var maxFilesPerVersion = 64
    /// The most versions one model's state may list.
    public var maxVersionsPerModel = 256
    /// The most bytes of one file of a version (`--max-model-bytes`).
    public var maxFileBytes = CompiledModel.defaultMaxFileBytes
    /// A Watch stream whose client has more than this queued and unread gets nothing more until
    /// it reads; meanwhile newer states replace older ones of the same model, so what waits for
    /// it is at most one state per model. (A client that reads nothing for the transport's
    /// response-window timeout is reset.)
    public var maxWatchQueuedBytes = 4 << 20
    /// A FetchVersion stream sends its next chunk only while less than this waits for the client.
    public var maxFetchQueuedBytes = 1 << 20

    public init() {}
}

/// Why a version folder, a file or a registry message cannot be used.
public struct RegistryError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The regular files of version folders: listing, bounded chunked reads, and SHA-256 digests
/// cached by path, size, modification time and inode, so a poll does not hash a file again.
public final class VersionFiles: Sendable {
    private struct Key: Hashable { var path: String }
    private struct Entry { var size: UInt64; var mtimeNs: Int64; var inode: UInt64; var digest: String }
    private let cache = Mutex<[Key: Entry]>([:])
    /// Digests computed (not served from the cache) since creation; for tests.
    private let hashed = Atomic<Int>(0)
    let limits: RegistryLimits

    public init(limits: RegistryLimits = RegistryLimits()) { self.limits = limits }

    /// How many files were hashed rather than found in the cache.
    public var hashCount: Int { hashed.load(ordering: .relaxed) }

    /// Whether `name` may be a file of a version: a plain, visible file name.
    public static func isValidFileName(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard !b.isEmpty, b.count <= 255, b[0] != UInt8(ascii: ".") else { return false }
        return !b.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") || $0 < 0x20 || $0 == 0x7F }
    }

    /// The regular files of a version folder (hidden names skipped), sorted by name, with size and
    /// SHA-256. Throws when the folder holds more than `maxFilesPerVersion` files or one above
    /// `maxFileBytes`, or a file cannot be read.
    public func list(_ folder: URL) throws -> [RegistryFile] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter(Self.isValidFileName).sorted()
        var files: [RegistryFile] = []
        for name in names {
            let path = folder.path + "/" + name
            var st = stat()
            guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            if files.count == limits.maxFilesPerVersion {
                throw RegistryError("\(folder.path) holds more than \(limits.maxFilesPerVersion) files; a version folder may hold at most that many")
            }
            let (size, digest) = try self.digest(path)
            files.append(RegistryFile(name: name, size: size, sha256: digest))
        }
        return files
    }

    /// The size and lowercase hex SHA-256 of a regular file, from the cache when the file's size,
    /// modification time and inode are unchanged.
    public func digest(_ path: String) throws -> (UInt64, String) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw RegistryError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        let size = UInt64(st.st_size)
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let inode = UInt64(st.st_ino)
        if let e = cache.withLock({ $0[Key(path: path)] }), e.size == size, e.mtimeNs == mtime, e.inode == inode {
            return (size, e.digest)
        }
        var hasher = SHA256()
        var total: UInt64 = 0
        try Self.readChunks(path, limit: limits.maxFileBytes, chunk: 1 << 20) { bytes in
            hasher.update(bytes)
            total += UInt64(bytes.count)
        }
        let digest = hasher.finalize().hex
        hashed.add(1, ordering: .relaxed)
        // The size read, not the one stat saw: a file that changed meanwhile is hashed again next time.
        if total == size { cache.withLock { $0[Key(path: path)] = Entry(size: size, mtimeNs: mtime, inode: inode, digest: digest) } }
        return (total, digest)
    }

    /// Drops cached digests of files under `prefix` not in `keep` (files gone from the repository).
    func prune(keeping keep: Set<String>) {
        cache.withLock { c in c = c.filter { keep.contains($0.key.path) } }
    }

    /// Reads a regular file in pieces of at most `chunk` bytes, calling `body` with each (see
    /// `ChunkReader`).
    public static func readChunks(_ path: String, limit: Int, chunk: Int, _ body: ([UInt8]) throws -> Void) throws {
        let reader = try ChunkReader(path: path, limit: limit)
        while true {
            let bytes = try reader.next(chunk)
            if bytes.isEmpty { return }
            try body(bytes)
        }
    }
}

/// One regular file read in pieces: anything that is not a regular file, or that holds more than
/// `limit` bytes (however it grows while read), is refused. Opened with O_NONBLOCK, so a FIFO
/// never blocks the reader. Closed when released.
public final class ChunkReader {
    public let path: String
    private let fd: Int32
    private let limit: Int
    /// Bytes read so far.
    public private(set) var offset = 0
    /// The size fstat reported at open.
    public let size: Int

    public init(path: String, limit: Int) throws {
        self.path = path
        self.limit = limit
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw RegistryError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw RegistryError("\(path) is not a regular file")
        }
        guard Int(st.st_size) <= limit else {
            close(fd)
            throw RegistryError("\(path) holds \(st.st_size) bytes, more than the limit of \(limit) (--max-model-bytes)")
        }
        self.fd = fd
        self.size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// The next at most `count` bytes; empty at the end of the file.
    public func next(_ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw RegistryError("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
            if offset > limit { throw RegistryError("\(path) grew past the limit of \(limit) bytes while being read") }
            if n < count { buffer.removeSubrange(n...) }
            return buffer
        }
    }
}
