import Foundation
import Logging
import SwerveRepository
import SwerveServing
import SwerveTesting
import Testing
@testable import SwerveServer

/// The poller reloads a model when what decides its serving changes on disk, not only when a
/// version folder appears: the registry publishes a version and then rewrites the policy, and a
/// scan between the two must not make the server miss the second step.
@Suite struct RepositoryPollerTests {
    @Test func aPolicyRewrittenAfterItsVersionWasSeenIsPickedUp() async throws {
        let dir = try TemporaryDirectory(prefix: "swerve-poller")
        let repository = ModelRepository(root: dir.url)
        for v in [1, 2] {
            let folder = repository.versionDirectory("m", version: v)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data(registryTestModel(bias: Float(v))).write(to: repository.modelFile("m", version: v))
        }
        var logger = Logger(label: "poller-test")
        logger.logLevel = .critical
        let manager = ModelManager(repository: repository, logger: logger)
        defer { manager.shutdown() }
        try manager.loadAll()
        #expect(manager.readyVersions(of: "m") == [2])  // default policy: the latest

        let poller = RepositoryPoller(manager: manager, interval: 0.05, logger: logger)
        poller.start()
        defer { poller.stop() }
        // Same versions on disk, new policy: only config.json changes.
        try Data(#"{"version_policy": {"specific": {"versions": [1]}}}"#.utf8).write(to: repository.configFile("m"))
        try await waitUntil("the poller to serve version 1 after the policy changed") { manager.readyVersions(of: "m") == [1] }
    }
}
