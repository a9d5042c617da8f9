import Foundation
import SwerveRepository
import SwerveTesting
import Testing

/// labels.json: desired state written atomically, compare-and-set on its generation, checked
/// against the versions that exist, and what a replica must hold.
@Suite struct LabelsTests {
    func repoWithVersions(_ n: Int) throws -> URL {
        let repo = try registryTestDirectory("labels")
        for i in 1...n {
            _ = try ModelPublisher.publish(onnx: registryTestModel(bias: Float(i)), repository: repo, name: "m", lineage: sampleLineage())
        }
        return repo
    }

    @Test func compareAndSetOnGeneration() throws {
        let repo = try repoWithVersions(3)
        defer { try? FileManager.default.removeItem(at: repo) }
        let registry = ModelRegistry(repository: repo)
        var l = try registry.labels(of: "m")
        #expect(l == ModelLabels() && !registry.isLabelManaged("m"))
        l.stable = 1
        let first = try registry.setLabels(model: "m", l)
        #expect(first.generation == 1 && first.updated != nil && registry.isLabelManaged("m"))
        // A writer that read generation 0 loses.
        var stale = l
        stale.canary = 2
        stale.canaryPercent = 5
        #expect(throws: StorageError.self) { try registry.setLabels(model: "m", stale) }
        #expect(try registry.labels(of: "m").canary == nil)
        // force overrides; an unchanged write stores nothing.
        let forced = try registry.setLabels(model: "m", stale, force: true)
        #expect(forced.generation == 2 && forced.canary == 2 && forced.canaryPercent == 5)
        #expect(try registry.setLabels(model: "m", forced).generation == 2)
        // A share without a canary is refused; clearing both is one write.
        var cleared = forced
        cleared.canary = nil
        #expect(throws: StorageError.self) { try registry.setLabels(model: "m", cleared) }
        cleared.canaryPercent = 0
        #expect(try registry.setLabels(model: "m", cleared).generation == 3)
        // The bytes on disk decode to what was returned.
        let onDisk = try ModelRepository(root: repo).labels(of: "m")
        #expect(onDisk == (try registry.labels(of: "m")))
    }

    @Test func labelsMustNameCompleteVersionsAndMakeSense() throws {
        let repo = try repoWithVersions(2)
        defer { try? FileManager.default.removeItem(at: repo) }
        let registry = ModelRegistry(repository: repo)
        for bad in [ModelLabels(stable: 9), ModelLabels(stable: 0), ModelLabels(stable: 1, canary: 1),
                    ModelLabels(stable: 1, canaryPercent: 5), ModelLabels(canary: 2, canaryPercent: 5),
                    ModelLabels(stable: 1, canary: 2, canaryPercent: 101), ModelLabels(stable: 1, canary: 2, canaryPercent: .nan)] {
            #expect(throws: StorageError.self, "\(bad)") { try registry.setLabels(model: "m", bad) }
        }
        #expect(!FileManager.default.fileExists(atPath: repo.appendingPathComponent("m/labels.json").path))
        #expect(throws: StorageError.self) { try registry.setLabels(model: "../m", ModelLabels(stable: 1)) }
        #expect(throws: StorageError.self) { try registry.setLabels(model: "nope", ModelLabels(stable: 1)) }
        // A version its gates rejected cannot be labelled.
        try registry.setStatus(.rejected, model: "m", version: 2, reason: "test")
        #expect(throws: StorageError.self) { try registry.setLabels(model: "m", ModelLabels(stable: 2)) }
    }

    @Test func promotionMovesTheStableLabelOfALabelManagedModel() throws {
        let repo = try repoWithVersions(3)
        defer { try? FileManager.default.removeItem(at: repo) }
        let registry = ModelRegistry(repository: repo)
        try registry.setLabels(model: "m", ModelLabels(stable: 1))
        try registry.promote(model: "m", version: 2)
        let l = try registry.labels(of: "m")
        #expect(l.stable == 2 && l.previousStable == 1)
        #expect(try registry.servingVersion(of: "m") == 2)
        #expect(try registry.lineage(of: "m", version: 2).status == .serving)
        #expect(try registry.lineage(of: "m", version: 1).status == .validated)
        try registry.rollback(model: "m", to: 1, reason: "bad canary")
        #expect(try registry.labels(of: "m").stable == 1)
        #expect(try registry.lineage(of: "m", version: 2).status == .rolledBack)
        // The version policy was never touched: config.json does not exist.
        #expect(!FileManager.default.fileExists(atPath: repo.appendingPathComponent("m/config.json").path))
    }

    @Test func wantedVersionsArePolicyPlusLabels() {
        let l = ModelLabels(stable: 2, canary: 5, previousStable: 1)
        #expect(ModelLabels.wantedVersions(policy: .latest(1), labels: l, available: [1, 2, 3, 4, 5, 6]) == [6, 5, 2, 1])
        #expect(ModelLabels.wantedVersions(policy: .latest(1), labels: nil, available: [1, 2]) == [2])
        // A label naming a version that is gone is skipped, not invented.
        #expect(ModelLabels.wantedVersions(policy: .specific([2]), labels: l, available: [2, 3]) == [2])
    }

    @Test func corruptOrHugeLabelsFilesAreErrorsNotSilence() throws {
        let repo = try repoWithVersions(1)
        defer { try? FileManager.default.removeItem(at: repo) }
        let file = repo.appendingPathComponent("m/labels.json")
        try Data("{\"stable\":".utf8).write(to: file)
        #expect(throws: StorageError.self) { try ModelRepository(root: repo).labels(of: "m") }
        try Data(repeating: 0x20, count: ModelLabels.maxFileBytes + 1).write(to: file)
        #expect(throws: StorageError.self) { try ModelRepository(root: repo).labels(of: "m") }
        #expect(ModelRepository(root: repo).snapshot(of: "m").labelsProblem != nil)
    }
}
