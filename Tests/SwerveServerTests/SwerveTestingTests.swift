import Foundation
import SwerveClient
import SwerveStatus
import SwerveTesting
import Synchronization
import Testing

/// The promises SwerveTesting makes to every other test: servers and directories do not outlive
/// their scope, and waits fail clearly instead of hanging.
@Suite("SwerveTesting")
struct SwerveTestingTests {
    @Test func theServerAndItsRepositoryAreGoneAfterTheScope() async throws {
        let (port, repository) = try await withInProcessServer([.fixture("lr_binary", as: "lr")]) { server in
            #expect(server.port > 0)
            #expect(FileManager.default.fileExists(atPath: server.repository.appendingPathComponent("lr/1/model.onnx").path))
            return (server.port, server.repository)
        }
        #expect(!FileManager.default.fileExists(atPath: repository.path))
        let status = await statusThrown { _ = try await SwerveClient.connect(host: "127.0.0.1", port: port) }
        #expect(status?.code == .unavailable, "still listening on \(port): \(String(describing: status))")
    }

    @Test func theServerStopsWhenTheBodyThrows() async throws {
        struct Planned: Error {}
        let port = Mutex(0)
        await #expect(throws: Planned.self) {
            try await withInProcessServer { server in
                port.withLock { $0 = server.port }
                throw Planned()
            }
        }
        let status = await statusThrown { _ = try await SwerveClient.connect(host: "127.0.0.1", port: port.withLock { $0 }) }
        #expect(status?.code == .unavailable)
    }

    @Test func twoServersGetTheirOwnPortsAndRepositories() async throws {
        try await withInProcessServer { a in
            try await withInProcessServer { b in
                #expect(a.port != b.port)
                #expect(a.repository != b.repository)
            }
        }
    }

    @Test func temporaryDirectoriesAreRemoved() throws {
        var directory: TemporaryDirectory? = try TemporaryDirectory()
        let path = try #require(directory?.path)
        try Data("x".utf8).write(to: try #require(directory?.appending("file")))
        #expect(FileManager.default.fileExists(atPath: path + "/file"))
        directory = nil
        #expect(!FileManager.default.fileExists(atPath: path), "removed, contents and all, when the last reference goes")

        let scoped = try withTemporaryDirectory { url -> String in
            try FileManager.default.createDirectory(at: url.appendingPathComponent("nested/deeper"), withIntermediateDirectories: true)
            try Data("x".utf8).write(to: url.appendingPathComponent("nested/deeper/file"))
            #expect(url.path.hasPrefix(FileManager.default.temporaryDirectory.path))
            return url.path
        }
        #expect(!FileManager.default.fileExists(atPath: scoped), "removed at the end of the scope, contents and all")
    }

    @Test func waitUntilReturnsOnceTheConditionHoldsAndNamesWhatItAwaitedOnTimeout() async throws {
        let signal = Signal()
        Thread { signal.raise() }.start()
        try await waitUntil("another thread raises the signal") { signal.isRaised }
        #expect(signal.isRaised)

        let clock = ContinuousClock()
        let started = clock.now
        await #expect {
            try await waitUntil("pigs fly", timeout: .milliseconds(50)) { false }
        } throws: { error in
            let text = "\(error)"
            return error is WaitTimeout && text.contains("pigs fly") && text.contains("SwerveTestingTests.swift")
        }
        // Generous: a wait that ignored its timeout would never end; a loaded 2-core machine took 7.6 s.
        #expect(clock.now - started < .seconds(60), "the wait is bounded by its timeout")
    }

    @Test func withTimeoutCancelsWhatDoesNotFinish() async throws {
        #expect(try await withTimeout(.seconds(10), "an immediate value") { 42 } == 42)
        await #expect(throws: WaitTimeout.self) {
            try await withTimeout(.milliseconds(50), "a sleep of an hour") {
                // The sleep is the thing under test: work that would never finish in time.
                try await Task.sleep(for: .seconds(3600))
            }
        }
    }
}

/// A flag one thread raises and another sees.
final class Signal: Sendable {
    private let raised = Mutex(false)
    func raise() { raised.withLock { $0 = true } }
    var isRaised: Bool { raised.withLock { $0 } }
}
