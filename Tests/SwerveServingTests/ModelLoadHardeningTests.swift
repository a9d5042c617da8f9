import Foundation
import Logging
import SwerveInference
import SwerveRepository
import SwerveTesting
import Synchronization
import Testing
@testable import SwerveServing

#if canImport(Glibc)
import Glibc
#endif

/// Model files that are not what they claim (a link to /dev/zero, a FIFO, a directory, an
/// oversize file), loads that hang past the load timeout, and the readiness the manager reports.
@Suite struct ModelLoadHardeningTests {
    static let exampleModel = ModelManagerTests.exampleModel

    /// A repository with `models` ("name" → how its version 1's model.onnx is made).
    enum File { case example, symlinkToExample, link(String), fifo, directory, sparse(Int) }

    final class Repo: Sendable {
        let root: URL
        init(_ models: [String: File]) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-harden-\(UUID())")
            let fm = FileManager.default
            for (name, kind) in models {
                let dir = root.appendingPathComponent("\(name)/1")
                try fm.createDirectory(at: dir, withIntermediateDirectories: true)
                let file = dir.appendingPathComponent("model.onnx").path
                switch kind {
                case .example: try fm.copyItem(atPath: ModelLoadHardeningTests.exampleModel.path, toPath: file)
                case .symlinkToExample:
                    // As a Kubernetes volume lays it out: model.onnx -> ..data/model.onnx.
                    let target = root.appendingPathComponent("\(name)/..data")
                    try fm.createDirectory(at: target, withIntermediateDirectories: true)
                    try fm.copyItem(atPath: ModelLoadHardeningTests.exampleModel.path, toPath: target.appendingPathComponent("model.onnx").path)
                    try fm.createSymbolicLink(atPath: file, withDestinationPath: target.appendingPathComponent("model.onnx").path)
                case .link(let target): try fm.createSymbolicLink(atPath: file, withDestinationPath: target)
                case .fifo: #expect(mkfifo(file, 0o644) == 0)
                case .directory: try fm.createDirectory(atPath: file, withIntermediateDirectories: false)
                case .sparse(let size):
                    let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                    #expect(fd >= 0 && ftruncate(fd, off_t(size)) == 0)
                    close(fd)
                }
            }
        }
        func file(_ name: String) -> String { root.appendingPathComponent("\(name)/1/model.onnx").path }
        /// Opens every FIFO's other end so a reader stuck on one (a regression) is released.
        func releaseFIFOs() {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [] {
                let fd = open(file(name), O_RDWR | O_NONBLOCK)
                if fd >= 0 { close(fd) }
            }
        }
        deinit { try? FileManager.default.removeItem(at: root) }
    }

    static var quiet: Logger {
        var l = Logger(label: "test")
        l.logLevel = .critical
        return l
    }

    func manager(_ repo: Repo, options: ModelManager.LoadOptions = .init(),
                 loader: @escaping ModelManager.VersionLoader = ModelManager.defaultLoader) -> ModelManager {
        ModelManager(repository: ModelRepository(path: repo.root.path), logger: Self.quiet,
                     cacheBudget: CacheBudget(totalBytes: 1 << 20, perModelFraction: 0.5), options: options, loader: loader)
    }

    /// Runs `body` on its own thread, waiting at most 60 s, so a hang fails the test instead of hanging it.
    func bounded<R: Sendable>(_ what: String, unblock: () -> Void = {}, _ body: @escaping @Sendable () -> R) -> R? {
        let result = Mutex<R?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread { let r = body(); result.withLock { $0 = r }; done.signal() }.start()
        guard done.wait(timeout: .now() + 60) == .success else {
            Issue.record("\(what) did not finish within 60 s")
            unblock()
            _ = done.wait(timeout: .now() + 10)
            return nil
        }
        return result.withLock { $0 }
    }

    func reason(_ mm: ModelManager, _ name: String) -> (ModelIndexEntry.State, String)? {
        mm.index().first { $0.name == name && $0.version == "1" }.map { ($0.state, $0.reason) }
    }

    // MARK: Model files

    /// model.onnx linked to /dev/zero: refused by type (never read), reported with the bound;
    /// the other model serves.
    @Test func devZeroLinkIsRefusedAndReported() throws {
        let repo = try Repo(["good": .example, "zero": .link("/dev/zero")])
        let mm = manager(repo)
        defer { mm.shutdown() }
        _ = bounded("loading a model linked to /dev/zero") { try? mm.loadAll() }
        #expect(mm.readyVersions(of: "good") == [1])
        let r = try #require(reason(mm, "zero"))
        #expect(r.0 == .unavailable)
        #expect(r.1.contains("model file \(repo.file("zero")) is a character device, not a regular file"), "\(r.1)")
        #expect(r.1.contains("at most 2147483648 bytes"), "\(r.1)")
    }

    /// A FIFO model.onnx is refused at once; the other models load, and start-up ends.
    @Test func fifoIsRefusedAndOthersLoad() throws {
        let repo = try Repo(["a": .example, "b": .example, "pipe": .fifo])
        let mm = manager(repo)
        defer { mm.shutdown() }
        let finished = bounded("start-up with a FIFO model.onnx", unblock: repo.releaseFIFOs) { (try? mm.loadAll()) != nil }
        #expect(finished == true)
        #expect(mm.readyVersions(of: "a") == [1] && mm.readyVersions(of: "b") == [1])
        let r = try #require(reason(mm, "pipe"))
        #expect(r.0 == .unavailable)
        #expect(r.1.contains("\(repo.file("pipe")) is a FIFO (named pipe), not a regular file"), "\(r.1)")
        // Strict readiness: the FIFO model is expected and not ready, so the server is not; the
        // reason names it. Without strict readiness the ready models are enough.
        let strict = mm.readiness(strict: true)
        #expect(!strict.ready)
        #expect(strict.reason.contains("model 'pipe' version 1 failed to load"), "\(strict.reason)")
        #expect(mm.readiness(strict: false).ready)
        // Loads and unloads of the others are not held up by it.
        try mm.unload(model: "a")
        try mm.load(model: "a")
        #expect(mm.readyVersions(of: "a") == [1])
        // Unloading the broken model (Triton's explicit model control) makes the rest enough.
        try mm.unload(model: "pipe")
        #expect(mm.readiness(strict: true) == .init(ready: true, reason: ""))
    }

    @Test func symlinkToARegularFileLoads() throws {
        let repo = try Repo(["linked": .symlinkToExample])
        let mm = manager(repo)
        defer { mm.shutdown() }
        try mm.loadAll()
        #expect(mm.readyVersions(of: "linked") == [1])
        #expect(mm.readiness(strict: true).ready)
    }

    /// A sparse model.onnx of 2 GiB + 1 bytes (no disk used) is refused from its size.
    @Test func oversizeFileIsRefusedNamingTheLimit() throws {
        let repo = try Repo(["big": .sparse((2 << 30) + 1), "small": .example])
        let mm = manager(repo)
        defer { mm.shutdown() }
        try mm.loadAll()
        let r = try #require(reason(mm, "big"))
        #expect(r.0 == .unavailable)
        #expect(r.1.contains("model file \(repo.file("big")) is 2147483649 bytes, above the limit of 2147483648 bytes"), "\(r.1)")
        #expect(mm.readyVersions(of: "small") == [1])
    }

    /// `--max-model-bytes` applies: the example (a few KiB) is refused under a 100-byte bound.
    @Test func configuredBoundApplies() throws {
        let repo = try Repo(["m": .example])
        var options = ModelManager.LoadOptions()
        options.maxModelBytes = 100
        let mm = manager(repo, options: options)
        defer { mm.shutdown() }
        #expect(throws: ServingError.self) { try mm.load(model: "m") }
        let r = try #require(reason(mm, "m"))
        #expect(r.1.contains("above the limit of 100 bytes"), "\(r.1)")
    }

    @Test func directoryNamedModelOnnxIsRefused() throws {
        let repo = try Repo(["dir": .directory, "ok": .example])
        let mm = manager(repo)
        defer { mm.shutdown() }
        try mm.loadAll()
        let r = try #require(reason(mm, "dir"))
        #expect(r.0 == .unavailable)
        #expect(r.1.contains("\(repo.file("dir")) is a directory, not a regular file"), "\(r.1)")
        #expect(mm.readyVersions(of: "ok") == [1])
    }

    // MARK: Load timeout

    /// A loader that, for model "slow", reports that it started and then waits to be released
    /// (at most 60 s, so a broken test cannot hang the run); other models load normally.
    final class SlowLoader: Sendable {
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let slowCalls = Atomic<Int>(0)
        /// Once false, "slow" loads normally too.
        let slow = Atomic<Bool>(true)

        var loader: ModelManager.VersionLoader {
            { [self] r in
                if r.name == "slow" && slow.load(ordering: .acquiring) {
                    slowCalls.wrappingAdd(1, ordering: .relaxed)
                    started.signal()
                    // Released by the test; the bound only ends the thread of a test that failed. (60 s
                    // was once reached by a passing test whose async steps waited that long for a
                    // thread of the cooperative pool, beside CPU-heavy synchronous suites.)
                    _ = release.wait(timeout: .now() + 600)
                }
                return try ModelManager.defaultLoader(r)
            }
        }
    }

    /// A load that exceeds the load timeout fails as that version's failure and does not hold
    /// up another model's load or unload; its late result is discarded, never installed; while
    /// its thread still runs, another load of the same model is refused rather than stacked.
    @Test func loadPastTheTimeoutIsAbandonedAndBlocksNothing() async throws {
        let repo = try Repo(["slow": .example, "fast": .example])
        let seam = SlowLoader()
        var options = ModelManager.LoadOptions()
        options.loadTimeout = .seconds(3)
        let mm = manager(repo, options: options, loader: seam.loader)
        defer { seam.slow.store(false, ordering: .releasing); seam.release.signal(); mm.shutdown() }
        try mm.load(model: "fast")

        let slowOutcome = Mutex<Result<Void, any Error>?>(nil)
        Thread { let r = Result { try mm.load(model: "slow") }; slowOutcome.withLock { $0 = r } }.start()
        #expect(seam.started.wait(timeout: .now() + 30) == .success, "the slow build started")

        // While "slow" is being built (and blocked), the other model loads and unloads.
        let others = bounded("unload and load of another model during a hung load") {
            Result { try mm.unload(model: "fast"); try mm.load(model: "fast") }
        }
        #expect((try? others?.get()) != nil, "\(String(describing: others))")
        #expect(mm.readyVersions(of: "fast") == [1])
        // The strict readiness names the model still loading; without strict, "fast" is enough.
        #expect(mm.readiness(strict: true).reason == "model 'slow' version 1 is loading")
        #expect(mm.readiness(strict: false).ready)

        // The slow load times out (its build is still blocked): a failure of that version.
        try await waitUntil("the slow load returns", timeout: .seconds(30)) { slowOutcome.withLock { $0 } != nil }
        let error = try #require(slowOutcome.withLock { $0 }.flatMap { r -> (any Error)? in if case .failure(let e) = r { e } else { nil } })
        #expect("\(error)".contains("load timed out after 3 s (--model-load-timeout)"), "\(error)")
        let r = try #require(reason(mm, "slow"))
        #expect(r.0 == .unavailable)
        #expect(r.1.contains("load timed out after 3 s"), "\(r.1)")
        #expect(mm.abandonedLoads == ["slow"])
        #expect(!mm.readiness(strict: true).ready)

        // Another load of it is refused while the abandoned build runs, without starting a second build.
        let again = #expect(throws: ServingError.self) { try mm.load(model: "slow") }
        #expect(again?.message.contains("an earlier load that exceeded the load timeout (3 s) is still running") == true, "\(String(describing: again))")
        #expect(seam.slowCalls.load(ordering: .relaxed) == 1)

        // The build finishes late: its result is discarded, not installed.
        seam.release.signal()
        try await waitUntil("the abandoned build ends", timeout: .seconds(30)) { mm.abandonedLoads.isEmpty }
        #expect(mm.readyVersions(of: "slow") == [])
        #expect(reason(mm, "slow")?.0 == .unavailable)

        // Now it loads (the seam no longer delays it).
        seam.slow.store(false, ordering: .releasing)
        try mm.load(model: "slow")
        #expect(mm.readyVersions(of: "slow") == [1])
        #expect(mm.readiness(strict: true).ready)
    }

    /// Start-up loads models in parallel: one hung model does not keep the others from
    /// becoming ready, and start-up ends once it returns (timing out is the test above).
    @Test func startupIsNotHeldUpByAHungModel() async throws {
        let repo = try Repo(["slow": .example, "a": .example, "b": .example, "c": .example])
        let seam = SlowLoader()
        var options = ModelManager.LoadOptions()
        // Far beyond the test: the slow load is released by hand, and a loaded machine must not
        // turn it into a timeout (a 30 s one did once, with every test running in parallel).
        options.loadTimeout = .seconds(600)
        options.parallelLoads = 2
        let mm = manager(repo, options: options, loader: seam.loader)
        defer { seam.slow.store(false, ordering: .releasing); seam.release.signal(); mm.shutdown() }
        let startup = Mutex(false)
        Thread { try? mm.loadAll(); startup.withLock { $0 = true } }.start()
        #expect(seam.started.wait(timeout: .now() + 30) == .success)
        try await waitUntil("a, b and c are ready while slow hangs", timeout: .seconds(30)) {
            ["a", "b", "c"].allSatisfy { !mm.readyVersions(of: $0).isEmpty }
        }
        #expect(!startup.withLock { $0 })
        #expect(!mm.readiness(strict: true).ready)
        seam.release.signal()
        try await waitUntil("start-up ends", timeout: .seconds(30)) { startup.withLock { $0 } }
        #expect(mm.readyVersions(of: "slow") == [1])
        #expect(mm.readiness(strict: true).ready)
    }

    // MARK: Readiness

    @Test func strictReadinessFollowsLoadsAndUnloads() throws {
        let repo = try Repo(["a": .example, "b": .example])
        let mm = manager(repo)
        defer { mm.shutdown() }
        #expect(mm.readiness(strict: true) == .init(ready: false, reason: "no model version is ready"))
        try mm.loadAll()
        #expect(mm.readiness(strict: true).ready)
        try mm.unload(model: "a")
        #expect(mm.readiness(strict: true).ready, "an unloaded model is no longer expected")
        try mm.unload(model: "b")
        #expect(mm.readiness(strict: true) == .init(ready: false, reason: "no model version is ready"))
        #expect(mm.readiness(strict: false) == .init(ready: false, reason: "no model version is ready"))
        try mm.load(model: "a")
        #expect(mm.readiness(strict: true).ready)
        #expect(mm.isServing("a", strict: true) && !mm.isServing("b", strict: true))
        mm.shutdown()
        #expect(mm.readiness(strict: false) == .init(ready: false, reason: "shutting down"))
    }

    /// Strict: a broken model keeps the server not ready (and not serving under its own name);
    /// non-strict: the ready model is enough.
    @Test func brokenModelAndStrictness() throws {
        let repo = try Repo(["good": .example, "bad": .directory])
        let mm = manager(repo)
        defer { mm.shutdown() }
        try mm.loadAll()
        let strict = mm.readiness(strict: true)
        #expect(!strict.ready && strict.reason.hasPrefix("model 'bad' version 1 failed to load: "), "\(strict.reason)")
        #expect(mm.readiness(strict: false).ready)
        #expect(mm.isServing("good", strict: true))
        #expect(!mm.isServing("bad", strict: false))
    }
}
