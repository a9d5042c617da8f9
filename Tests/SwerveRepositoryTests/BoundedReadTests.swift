import Foundation
import SwerveInference
import SwerveTesting
import Testing
@testable import SwerveRepository

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` on a thread of its own and waits at most `seconds` for it, so a read that blocks
/// (the bug these tests guard against) fails the test instead of hanging it. `unblock` runs when
/// the time is up, to release the stuck thread (e.g. open the FIFO's other end).
func finishesPromptly<R: Sendable>(_ what: String, seconds: Int = 20, unblock: @Sendable () -> Void = {},
                                   _ body: @escaping @Sendable () -> R) -> R? {
    let box = LockedBox<R>()
    let done = DispatchSemaphore(value: 0)
    Thread { box.set(body()); done.signal() }.start()
    if done.wait(timeout: .now() + .seconds(seconds)) == .timedOut {
        Issue.record("\(what) did not return within \(seconds) s")
        unblock()
        _ = done.wait(timeout: .now() + .seconds(5))
        return nil
    }
    return box.get()
}

final class LockedBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T?
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T? { lock.lock(); defer { lock.unlock() }; return value }
}

/// Makes a FIFO at `path`; a writer-less open of it for reading blocks unless O_NONBLOCK.
func makeFIFO(_ path: String) throws {
    guard mkfifo(path, 0o644) == 0 else { throw StorageError(.io, "mkfifo \(path): \(errno)") }
}

/// Opens the FIFO's write end, which releases a reader stuck opening it.
func releaseFIFO(_ path: String) {
    let fd = open(path, O_RDWR | O_NONBLOCK)
    if fd >= 0 { close(fd) }
}

/// A sparse file of `size` bytes: it reports that size but takes no disk.
func makeSparseFile(_ path: String, size: Int) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw StorageError(.io, "create \(path)") }
    defer { close(fd) }
    guard ftruncate(fd, off_t(size)) == 0 else { throw StorageError(.io, "ftruncate \(path)") }
}

/// Every file the repository reads is read only when it is a regular file (symlinks followed)
/// within a size bound, without blocking: `BoundedFile`, `DurableFiles.readIfPresent`, and the
/// repository's config.json, metadata.json and model.onnx reads on top of them.
@Suite struct BoundedReadTests {
    @Test func regularFileAndSymlinkToOneAreRead() throws {
        try withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("f").path
            try Data("hello".utf8).write(to: URL(fileURLWithPath: file))
            let link = dir.appendingPathComponent("link").path
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file)
            #expect(try BoundedFile.read(file, limit: 5) == Array("hello".utf8))
            #expect(try BoundedFile.read(link, limit: 100) == Array("hello".utf8))
        }
    }

    @Test func exactlyTheLimitIsReadOneMoreIsNot() throws {
        try withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("f").path
            try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: file))
            #expect(try BoundedFile.read(file, limit: 1000).count == 1000)
            let error = #expect(throws: BoundedFile.Failure.self) { try BoundedFile.read(file, limit: 999, what: "model file") }
            #expect(error?.kind == .tooLarge)
            #expect(error?.message == "model file \(file) is 1000 bytes, above the limit of 999 bytes")
        }
    }

    @Test func missingFileIsMissing() throws {
        try withTemporaryDirectory { dir in
            let error = #expect(throws: BoundedFile.Failure.self) { try BoundedFile.read(dir.appendingPathComponent("nope").path, limit: 10) }
            #expect(error?.kind == .missing)
            #expect(try DurableFiles.readIfPresent(dir.appendingPathComponent("nope").path, limit: 10) == nil)
            // A dangling symlink reads as missing too.
            try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("dangling").path, withDestinationPath: dir.appendingPathComponent("gone").path)
            #expect(try DurableFiles.readIfPresent(dir.appendingPathComponent("dangling").path, limit: 10) == nil)
        }
    }

    /// A link to /dev/zero (endless) is refused by type at once, not read until the limit.
    @Test func symlinkToDevZeroIsRefused() throws {
        try withTemporaryDirectory { dir in
            let link = dir.appendingPathComponent("model.onnx").path
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/dev/zero")
            let error = finishesPromptly("reading a link to /dev/zero") {
                Result { () throws(BoundedFile.Failure) in try BoundedFile.read(link, limit: CompiledModel.defaultMaxFileBytes, what: "model file") }
            }
            guard case .failure(let failure)? = error else { Issue.record("read /dev/zero: \(String(describing: error))"); return }
            #expect(failure.kind == .notRegular)
            #expect(failure.message.contains(link) && failure.message.contains("a character device"), "\(failure.message)")
            #expect(failure.message.contains("at most 2147483648 bytes"), "\(failure.message)")
        }
    }

    /// A FIFO with no writer is refused immediately; a plain open() for reading would block.
    @Test func fifoIsRefusedWithoutBlocking() throws {
        try withTemporaryDirectory { dir in
            let fifo = dir.appendingPathComponent("model.onnx").path
            try makeFIFO(fifo)
            let result = finishesPromptly("reading a FIFO", unblock: { releaseFIFO(fifo) }) {
                Result { () throws(BoundedFile.Failure) in try BoundedFile.read(fifo, limit: 1 << 20, what: "model file") }
            }
            guard case .failure(let failure)? = result else { Issue.record("read FIFO: \(String(describing: result))"); return }
            #expect(failure.kind == .notRegular)
            #expect(failure.message.contains("a FIFO"), "\(failure.message)")
        }
    }

    @Test func directoryIsRefused() throws {
        try withTemporaryDirectory { dir in
            let folder = dir.appendingPathComponent("model.onnx").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            let error = #expect(throws: BoundedFile.Failure.self) { try BoundedFile.read(folder, limit: 10, what: "model file") }
            #expect(error?.kind == .notRegular)
            #expect(error?.message.contains("is a directory") == true, "\(String(describing: error))")
        }
    }

    /// A sparse file reporting 2 GiB + 1 bytes is refused from its size, without reading it.
    @Test func oversizeSparseFileIsRefused() throws {
        try withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("model.onnx").path
            try makeSparseFile(file, size: CompiledModel.defaultMaxFileBytes + 1)
            let error = #expect(throws: InferenceError.self) { try CompiledModel(contentsOfFile: file) }
            #expect(error?.code == .invalidModel)
            #expect(error?.message == "model file \(file) is 2147483649 bytes, above the limit of 2147483648 bytes", "\(String(describing: error))")
        }
    }

    /// A file whose reported size is wrong (procfs says 0) is still cut at the limit: at most
    /// limit + 1 bytes are read, so a file growing while read cannot get past it either.
    @Test func fileLyingAboutItsSizeIsStillBounded() throws {
        var st = stat()
        #expect(stat("/proc/self/status", &st) == 0 && st.st_size == 0, "procfs reports size 0")
        let error = #expect(throws: BoundedFile.Failure.self) { try BoundedFile.read("/proc/self/status", limit: 16) }
        #expect(error?.kind == .tooLarge)
        #expect(error?.message.contains("more than 16 bytes") == true, "\(String(describing: error))")
        // Within a generous limit it reads the whole (non-empty) file.
        #expect(try BoundedFile.read("/proc/self/status", limit: 1 << 20).count > 16)
    }

    // MARK: The repository's reads

    /// config.json that is a FIFO fails the model's settings (naming the file) and leaves the
    /// poller's snapshot with the problem, both without blocking.
    @Test func configFIFOIsAProblemNotAWait() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("m/1"), withIntermediateDirectories: true)
            let config = dir.appendingPathComponent("m/config.json").path
            try makeFIFO(config)
            let repo = ModelRepository(root: dir)
            let outcome = finishesPromptly("reading a FIFO config.json", unblock: { releaseFIFO(config) }) {
                (Result { try repo.settings(of: "m") }, repo.snapshot(of: "m"))
            }
            guard let (settings, snapshot) = outcome else { return }
            guard case .failure(let error as StorageError) = settings else { Issue.record("settings: \(settings)"); return }
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.hasPrefix("config.json is a FIFO (named pipe), not a regular file"), "\(error.message)")
            #expect(snapshot.config == nil)
            #expect(snapshot.configProblem?.contains("FIFO") == true)
        }
    }

    @Test func oversizeConfigIsRefusedNamingTheLimit() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("m/1"), withIntermediateDirectories: true)
            try makeSparseFile(dir.appendingPathComponent("m/config.json").path, size: ModelRepository.maxConfigBytes + 1)
            let error = #expect(throws: StorageError.self) { try ModelRepository(root: dir).settings(of: "m") }
            #expect(error?.code == .invalidConfiguration)
            #expect(error?.message == "config.json is 16777217 bytes, above the limit of 16777216 bytes", "\(String(describing: error))")
        }
    }

    @Test func metadataLinkedToDevZeroIsRefused() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("m/1"), withIntermediateDirectories: true)
            let meta = dir.appendingPathComponent("m/1/metadata.json").path
            try FileManager.default.createSymbolicLink(atPath: meta, withDestinationPath: "/dev/zero")
            let error = #expect(throws: StorageError.self) { try ModelRepository(root: dir).lineage(of: "m", version: 1) }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.contains("metadata.json \(meta) is a character device") == true, "\(String(describing: error))")
            // The non-throwing reads treat it as absent rather than reading it.
            #expect(ModelRepository(root: dir).referenceStatistics(of: "m", version: 1) == nil)
            #expect(DurableFiles.read(meta) == nil)
        }
    }
}
