import Foundation
import SwerveClient
import SwerveProto
import SwerveRPC
import SwerveRegistry
import SwerveRepository
import SwerveStatus
import SwerveTesting
import SwerveTransport
import Synchronization
import Testing

@Suite struct RegistryFollowerTests {
    @Test func followerAppliesTheSnapshotThenEveryChange() async throws {
        let remote = try TemporaryDirectory(prefix: "swerve-registry-remote")
        let local = try TemporaryDirectory(prefix: "swerve-registry-local")
        let v1 = try ModelPublisher.publish(onnx: registryTestModel(bias: 1), repository: remote.url, name: "m", lineage: sampleLineage())
        let v2 = try ModelPublisher.publish(onnx: registryTestModel(bias: 2), repository: remote.url, name: "m", lineage: sampleLineage())
        let registry = ModelRegistry(repository: remote.url)
        try registry.setLabels(model: "m", ModelLabels(stable: v1, reason: "first"))
        // What a crash left behind in the local copy.
        try FileManager.default.createDirectory(at: local.appending("m/.tmp-2-deadbeef"), withIntermediateDirectories: true)
        try Data([1, 2]).write(to: local.appending("m/.tmp-2-deadbeef/model.onnx"))
        try Data("{".utf8).write(to: local.appending("m/.labels.json.tmp-0c0ffee0"))
        // A model the registry does not list.
        try FileManager.default.createDirectory(at: local.appending("stray/1"), withIntermediateDirectories: true)
        try Data(registryTestModel()).write(to: local.appending("stray/1/model.onnx"))

        let (server, service) = try await startRegistry(remote.url)
        let recording = RecordingTarget()
        let follower = RegistryFollower(options: quickFollowOptions(port: server.port), repository: local.url, target: recording.target, logger: quietLogger)
        follower.removeStaleTemporaries()
        #expect(entries(local.appending("m")) == [])
        follower.start()
        do {
            try await waitUntil("the first snapshot is applied", timeout: .seconds(60)) { follower.hasAppliedSnapshot }
            let snapshots = recording.snapshots.load(ordering: .relaxed)
            #expect(snapshots == 1)
            // Version policy latest 1 wants v2; the stable label wants v1.
            #expect(servedVersions(local.url, "m") == [v1, v2])
            for v in [v1, v2] {
                for file in ["model.onnx", "metadata.json"] {
                    #expect(fileBytes(local.appending("m/\(v)/\(file)")) == fileBytes(remote.appending("m/\(v)/\(file)")))
                }
            }
            let labels = try #require(try ModelRepository(root: local.url).labels(of: "m"))
            #expect(labels.stable == v1 && labels.generation == 1 && labels.reason == "first")
            #expect(recording.loads.withLock { $0 } == ["m"])
            // A local model the registry does not list is kept (a registry lists only what it can read).
            #expect(FileManager.default.fileExists(atPath: local.appending("stray/1/model.onnx").path))
            #expect(recording.unloads.withLock { $0 } == [])

            // A new version: the policy now wants v3 instead of v2, the label keeps v1.
            let v3 = try ModelPublisher.publish(onnx: registryTestModel(bias: 3), repository: remote.url, name: "m", lineage: sampleLineage())
            try await waitUntil("v3 reaches the follower and v2 goes", timeout: .seconds(60)) { servedVersions(local.url, "m") == [v1, v3] }
            #expect(fileBytes(local.appending("m/\(v3)/model.onnx")) == registryTestModel(bias: 3))
            #expect(recording.loads.withLock { $0.count } >= 2)

            // Labels and a status change (metadata.json of v1 changes: v1 is fetched again).
            var moved = try registry.labels(of: "m")
            moved.canary = v3
            moved.canaryPercent = 10
            try registry.setLabels(model: "m", moved)
            try registry.setStatus(.rolledBack, model: "m", version: v1, reason: "test")
            try await waitUntil("the labels and the status reach the follower", timeout: .seconds(60)) {
                let l = try? ModelRepository(root: local.url).labels(of: "m")
                let status = try? ModelRepository(root: local.url).lineage(of: "m", version: v1).status
                return l?.canary == v3 && l?.canaryPercent == 10 && status == .rolledBack
            }
            #expect(entries(local.appending("m")).filter { $0.hasPrefix(".tmp") } == [])

            // The model goes away in the registry.
            try FileManager.default.removeItem(at: remote.appending("m"))
            try await waitUntil("the removal reaches the follower", timeout: .seconds(60)) { !FileManager.default.fileExists(atPath: local.appending("m").path) }
            #expect(recording.unloads.withLock { $0 }.contains("m"))
        } catch {
            await follower.stop()
            service.shutdown()
            await server.shutdownGracefully(timeout: .seconds(2))
            throw error
        }
        await follower.stop()
        service.shutdown()
        await server.shutdownGracefully(timeout: .seconds(2))
    }

    @Test func badTransfersAreNeverRenamedAndAreRetried() async throws {
        let local = try TemporaryDirectory(prefix: "swerve-registry-local")
        let model = Array((0..<(600 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 31) })   // three chunks
        let fake = FakeRegistry(model: model, versionDirectory: local.appending("m/1"))
        let server = try await startServer(fake)
        let recording = RecordingTarget(onLoad: { _ in
            // At a load, the version is in place in full.
            fake.loadSawGoodFile.store(fileBytes(local.appending("m/1/model.onnx")) == model, ordering: .relaxed)
        })
        let follower = RegistryFollower(options: quickFollowOptions(port: server.port), repository: local.url, target: recording.target, logger: quietLogger)
        follower.start()
        do {
            try await waitUntil("the snapshot is applied after the bad transfers", timeout: .seconds(60)) { follower.hasAppliedSnapshot }
            // 1: wrong digest in the trailer; 2: a short file; 3: a wrong digest in the listing's
            // eyes (a flipped byte, trailer computed over it); 4: good.
            let fetches = fake.fetches.load(ordering: .relaxed)
            #expect(fetches == 4)
            #expect(fake.versionFolderSeen.withLock { $0 } == [false, false, false, false], "nothing was renamed into place before a good transfer")
            #expect(fileBytes(local.appending("m/1/model.onnx")) == model)
            let loadSawGoodFile = fake.loadSawGoodFile.load(ordering: .relaxed)
            #expect(loadSawGoodFile)
            #expect(entries(local.appending("m")) == ["1"], "no temporary folder is left")
        } catch {
            await follower.stop()
            await server.shutdownGracefully(timeout: .seconds(2))
            throw error
        }
        await follower.stop()
        await server.shutdownGracefully(timeout: .seconds(2))
    }
}

extension RegistryFollowerTests {
    @Test(arguments: [
        RegistryModel(modelName: "..", versions: [RegistryVersion(version: 1, files: [RegistryFile(name: "model.onnx", size: 1, sha256: String(repeating: "a", count: 64))])]),
        RegistryModel(modelName: "m", versions: [RegistryVersion(version: 1, files: [
            RegistryFile(name: "model.onnx", size: 1, sha256: String(repeating: "a", count: 64)),
            RegistryFile(name: "../../escape", size: 1, sha256: String(repeating: "a", count: 64))])]),
        RegistryModel(modelName: "m", versions: [RegistryVersion(version: -3, files: [RegistryFile(name: "model.onnx", size: 1, sha256: String(repeating: "a", count: 64))])]),
        RegistryModel(modelName: "m", versions: [RegistryVersion(version: 1, files: [RegistryFile(name: "model.onnx", size: 1 << 40, sha256: String(repeating: "a", count: 64))])]),
        RegistryModel(modelName: "m", versions: [RegistryVersion(version: 1, files: (0..<65).map {
            RegistryFile(name: $0 == 0 ? "model.onnx" : "f\($0)", size: 1, sha256: String(repeating: "a", count: 64)) })]),
        RegistryModel(modelName: "m", versions: [RegistryVersion(version: 1, files: [RegistryFile(name: "model.onnx", size: 1, sha256: "not hex")])]),
    ])
    func aHostileListingIsRefusedBeforeAnythingIsWritten(_ listing: RegistryModel) async throws {
        let parent = try TemporaryDirectory(prefix: "swerve-registry-hostile")
        let local = parent.appending("local")
        let fake = FakeRegistry(model: [1], versionDirectory: local.appendingPathComponent("m/1"), listing: listing)
        let server = try await startServer(fake)
        let recording = RecordingTarget()
        let follower = RegistryFollower(options: quickFollowOptions(port: server.port), repository: local, target: recording.target, logger: quietLogger)
        follower.start()
        do {
            // Refused, reconnected, refused again: the follower keeps trying, and never applies it. (A
            // bound, not a sleep: alone each case takes under 0.1 s, but the whole suite runs on a
            // 2-thread cooperative pool beside CPU-heavy synchronous suites, and on a loaded 2-core
            // machine the follower's tasks once waited over 60 s for a thread.)
            try await waitUntil("the follower watched twice", timeout: .seconds(180)) { fake.watches.load(ordering: .relaxed) >= 2 }
            #expect(!follower.hasAppliedSnapshot)
            let fetches = fake.fetches.load(ordering: .relaxed)
            #expect(fetches == 0)
            #expect(entries(parent.url) == ["local"] || entries(parent.url) == [])
            #expect(entries(local).allSatisfy { $0 == "m" })
            #expect(entries(local.appendingPathComponent("m")) == [])
            #expect(recording.loads.withLock { $0 } == [])
        } catch {
            await follower.stop()
            await server.shutdownGracefully(timeout: .seconds(2))
            throw error
        }
        await follower.stop()
        await server.shutdownGracefully(timeout: .seconds(2))
    }
}

/// A registry that lists one version of model "m" (or `listing`) and spoils its first three transfers.
final class FakeRegistry: GRPCCallHandler {
    let model: [UInt8]
    let listing: RegistryModel?
    let watches = Atomic<Int>(0)
    let versionDirectory: URL
    /// Computed once: SHA-256 in debug builds runs at a few MB/s.
    let digest: String
    let fetches = Atomic<Int>(0)
    let versionFolderSeen = Mutex<[Bool]>([])
    let loadSawGoodFile = Atomic<Bool>(false)

    init(model: [UInt8], versionDirectory: URL, listing: RegistryModel? = nil) {
        self.model = model
        self.listing = listing
        self.digest = hex(model)
        self.versionDirectory = versionDirectory
    }

    func handle(_ call: GRPCServerCall) {
        switch call.method {
        case "/swerve.v1.Registry/Watch":
            watches.add(1, ordering: .relaxed)
            let state = listing ?? RegistryModel(modelName: "m", versions: [
                RegistryVersion(version: 1, status: "candidate", files: [RegistryFile(name: "model.onnx", size: UInt64(model.count), sha256: digest)])])
            call.send(state.serializedBytes())
            call.send(RegistryModel(endOfSnapshot: true).serializedBytes())
        case "/swerve.v1.Registry/FetchVersion":
            let n = fetches.add(1, ordering: .relaxed).newValue
            versionFolderSeen.withLock { $0.append(FileManager.default.fileExists(atPath: versionDirectory.path)) }
            var bytes = model
            var trailer = digest
            switch n {
            case 1: trailer = String(repeating: "0", count: 64)
            case 2: bytes.removeLast()
            case 3: bytes[1000] ^= 0xFF; trailer = hex(bytes)   // a trailer true to the bytes sent
            default: break
            }
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + (256 << 10), bytes.count)
                var chunk = VersionChunk(file: "model.onnx", offset: UInt64(offset), data: Array(bytes[offset..<end]))
                if end == bytes.count {
                    chunk.last = true
                    chunk.fileSize = n == 2 ? UInt64(model.count) : UInt64(bytes.count)
                    chunk.sha256 = trailer
                }
                call.send(chunk.serializedBytes())
                offset = end
            }
            call.finish(.ok)
        default:
            call.finish(GRPCStatus(.unimplemented, call.method))
        }
    }
}
