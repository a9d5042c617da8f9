#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a whole file only when it is a regular file of at most a given size, without blocking
/// and without a window between the check and the read.
///
/// Model repositories are often mounted volumes whose entries are symlinks (Kubernetes
/// ConfigMaps and projected volumes), so symlinks are followed; but what they lead to must be a
/// regular file. A link to `/dev/zero` would otherwise be read until memory runs out, a FIFO
/// would block the reader (and whatever lock it holds) until someone writes to it, and a
/// directory reads as an error only after a confusing detour.
///
/// The file is opened with `O_NONBLOCK` (opening a FIFO without a writer then returns at once
/// instead of waiting) and `O_CLOEXEC`; the *opened* descriptor is checked with `fstat`, so a
/// rename between a check and the open cannot swap in something else; and at most `limit + 1`
/// bytes are read, so a file that grows while being read, or whose reported size is wrong, is
/// still refused at the limit rather than read on.
package enum BoundedFile {
    /// Why a file was not read. `message` names the file, what was wrong and the limit.
    package struct Failure: Error, Sendable, CustomStringConvertible {
        package enum Kind: Sendable, Equatable {
            /// There is no such file (or a dangling symlink).
            case missing
            /// It is a directory, FIFO, socket or device.
            case notRegular
            /// It holds more than the limit.
            case tooLarge
            /// open/fstat/read failed otherwise (permissions, I/O errors).
            case io
        }
        package var kind: Kind
        package var message: String
        package var description: String { message }
    }

    /// The file's bytes. `what` names the file's role in messages ("model file", "config.json").
    ///
    /// Throws `Failure` with `.missing` when there is nothing at `path`, `.notRegular` when it
    /// (after following symlinks) is not a regular file, `.tooLarge` when it holds more than
    /// `limit` bytes (whatever `fstat` says), `.io` otherwise.
    package static func read(_ path: String, limit: Int, what: String = "file") throws(Failure) -> [UInt8] {
        precondition(limit >= 0)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw Failure(kind: .missing, message: "\(what) \(path) does not exist")
            }
            if code == ENXIO {
                // A socket (or a FIFO on some systems) cannot be opened for reading like a file.
                throw Failure(kind: .notRegular, message: "\(what) \(path) is not a regular file (open: \(errnoText(code))); only regular files (or symlinks to them) of at most \(limit) bytes are read")
            }
            throw Failure(kind: .io, message: "cannot open \(what) \(path): \(errnoText(code))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw Failure(kind: .io, message: "cannot stat \(what) \(path): \(errnoText(errno))")
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else {
            throw Failure(kind: .notRegular, message: "\(what) \(path) is \(describe(type)), not a regular file; only regular files (or symlinks to them) of at most \(limit) bytes are read")
        }
        let reported = Int(st.st_size)
        if reported > limit {
            throw tooLarge(what, path, limit, size: "\(reported) bytes")
        }
        // A regular file never blocks; O_NONBLOCK stays harmless. Read until EOF or past the limit.
        var bytes = [UInt8](repeating: 0, count: reported + 1 <= limit ? reported + 1 : limit + 1)
        var filled = 0
        while true {
            if filled == bytes.count {
                if filled > limit { throw tooLarge(what, path, limit, size: "more than \(limit) bytes (it grew while being read)") }
                // The file grew past what fstat said; keep reading, at most to limit + 1.
                bytes.append(contentsOf: repeatElement(0, count: min(max(bytes.count, 1 << 16), limit + 1 - bytes.count)))
            }
            let n = bytes.withUnsafeMutableBytes { buf in
                systemReadFD(fd, buf.baseAddress! + filled, buf.count - filled)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(kind: .io, message: "cannot read \(what) \(path): \(errnoText(errno))")
            }
            if n == 0 { break }
            filled += n
        }
        if filled > limit { throw tooLarge(what, path, limit, size: "more than \(limit) bytes (it grew while being read)") }
        bytes.removeSubrange(filled...)
        return bytes
    }

    private static func tooLarge(_ what: String, _ path: String, _ limit: Int, size: String) -> Failure {
        Failure(kind: .tooLarge, message: "\(what) \(path) is \(size), above the limit of \(limit) bytes")
    }

    private static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a file"
        }
    }

    private static func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }
}

#if canImport(Glibc)
private let systemReadFD = Glibc.read
#elseif canImport(Darwin)
private let systemReadFD = Darwin.read
#endif
