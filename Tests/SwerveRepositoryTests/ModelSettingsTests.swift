import Foundation
import SwerveTesting
import Testing
@testable import SwerveRepository

@Suite struct ModelSettingsTests {
    @Test func versionPolicySelects() {
        #expect(VersionPolicy.latest(1).select(from: [1, 3, 2]) == [3])
        #expect(VersionPolicy.latest(2).select(from: [1, 3, 2]) == [3, 2])
        #expect(VersionPolicy.all.select(from: [2, 1]) == [2, 1])
        #expect(VersionPolicy.specific([1, 5]).select(from: [1, 2, 3]) == [1])
    }

    @Test func parsesConfig() throws {
        let json = #"""
        {"max_batch_size": 16, "dynamic_batching": {"max_queue_delay_us": 100, "max_queue_size": 7},
         "version_policy": {"specific": {"versions": [1, 3]}}, "instance_count": 2,
         "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}
        """#
        let s = try ModelSettings(json: Data(json.utf8))
        #expect(s.maxBatchSize == 16)
        #expect(s.maxQueueDelayMicroseconds == 100)
        #expect(s.maxQueueSize == 7)
        #expect(s.versionPolicy == .specific([1, 3]))
        #expect(s.instanceCount == 2)
        #expect(s.inputOverrides == [TensorOverride(name: "x", dataType: .fp32, shape: [-1, 4])])
    }

    @Test func executionMode() throws {
        #expect(try ModelSettings(json: Data("{}".utf8)).execution == .auto)
        for mode in ExecutionMode.allCases {
            #expect(try ModelSettings(json: Data(#"{"execution": "\#(mode.rawValue)"}"#.utf8)).execution == mode)
        }
        #expect(throws: StorageError.self) { try ModelSettings(json: Data(#"{"execution": "sometimes"}"#.utf8)) }
        #expect(throws: StorageError.self) { try ModelSettings(json: Data(#"{"execution": 1}"#.utf8)) }
    }

    @Test func rejectsBadConfig() {
        #expect(throws: StorageError.self) { try ModelSettings(json: Data(#"{"max_batch_sise": 3}"#.utf8)) }
        #expect(throws: StorageError.self) { try ModelSettings(json: Data(#"{"max_batch_size": -1}"#.utf8)) }
        #expect(throws: StorageError.self) { try ModelSettings(json: Data(#"{"version_policy": {"newest": 1}}"#.utf8)) }
        #expect(throws: StorageError.self) { try ModelSettings(json: Data(#"{"inputs": [{"name": "x", "datatype": "FLOAT"}]}"#.utf8)) }
        #expect(throws: StorageError.self) { try ModelSettings(json: Data("[1,2".utf8)) }
    }

    @Test func repositoryIgnoresIncompleteVersions() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-repo-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        for v in ["1", "2", ".tmp-3", "04", "x"] {
            try fm.createDirectory(at: root.appendingPathComponent("m/\(v)"), withIntermediateDirectories: true)
            if v != "2" { _ = fm.createFile(atPath: root.appendingPathComponent("m/\(v)/model.onnx").path, contents: Data([0])) }
        }
        let repo = ModelRepository(path: root.path)
        #expect(try repo.modelNames() == ["m"])
        #expect(repo.versions(of: "m") == [1])   // 2 has no model.onnx; the rest are not positive-integer names
        #expect(!ModelRepository.isValidModelName("../etc"))
    }

    @Test func versionPolicyWritesWhatItReads() throws {
        for policy in [VersionPolicy.latest(3), .all, .specific([2, 5])] {
            let data = try JSONSerialization.data(withJSONObject: ["version_policy": policy.jsonObject])
            #expect(try ModelSettings(json: data).versionPolicy == policy)
        }
    }

    @Test func servedVersionsFollowThePolicy() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-repo-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        for v in 1...3 {
            try FileManager.default.createDirectory(at: root.appendingPathComponent("m/\(v)"), withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: root.appendingPathComponent("m/\(v)/model.onnx").path, contents: Data([0]))
        }
        let repo = ModelRepository(root: root)
        #expect(try repo.servedVersions(of: "m") == [3])  // no config.json: latest 1
        try Data(#"{"version_policy": {"latest": {"num_versions": 2}}, "max_batch_size": 4}"#.utf8).write(to: repo.configFile("m"))
        #expect(try repo.servedVersions(of: "m") == [3, 2])
        try repo.setVersionPolicy(.specific([1]), of: "m")
        #expect(try repo.servedVersions(of: "m") == [1])
        #expect(try repo.settings(of: "m").maxBatchSize == 4)  // other keys kept
        // A config.json that does not parse is refused, not rewritten.
        try Data(#"{"max_batch_sise": 4}"#.utf8).write(to: repo.configFile("m"))
        #expect(throws: StorageError.self) { try repo.setVersionPolicy(.all, of: "m") }
        #expect(try String(contentsOf: repo.configFile("m"), encoding: .utf8).contains("max_batch_sise"))
    }
}
