import Foundation
import SwerveClient
import SwerveProto
import SwerveRPC
import SwerveRegistry
import SwerveRepository
import SwerveStatus
import SwerveTesting
import SwerveTransport
import Testing

@Suite struct RegistryServiceTests {
    @Test func callsAnswerWithTheirStatuses() async throws {
        let remote = try TemporaryDirectory(prefix: "swerve-registry-remote")
        let big = Array((0..<(700 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let v1 = try ModelPublisher.publish(onnx: registryTestModel(), repository: remote.url, name: "m", lineage: sampleLineage())
        try Data(big).write(to: remote.appending("m/\(v1)/extra.bin"))
        let token = "registry-test-token-0123456789"
        let (server, service) = try await startRegistry(remote.url, token: token)
        let client = try await SwerveClient.connect(host: "127.0.0.1", port: server.port, defaultTimeout: .seconds(10), adminToken: token)
        let anonymous = try await SwerveClient.connect(host: "127.0.0.1", port: server.port, defaultTimeout: .seconds(10))
        let wrong = try await SwerveClient.connect(host: "127.0.0.1", port: server.port, defaultTimeout: .seconds(10), adminToken: "not-the-token")
        defer { Task { await client.close(); await anonymous.close(); await wrong.close() } }

        // The token guards every call, reads included.
        #expect(await statusThrown { _ = try await anonymous.getLabels(model: "m") }?.code == .unauthenticated)
        #expect(await statusThrown { _ = try await wrong.getLabels(model: "m") }?.code == .permissionDenied)
        #expect(await statusThrown { for try await _ in anonymous.registryWatch() {} }?.code == .unauthenticated)
        #expect(await statusThrown { for try await _ in anonymous.fetchVersion(model: "m", version: 1) {} }?.code == .unauthenticated)

        // Labels: compare-and-set on the generation.
        #expect(try await client.getLabels(model: "m") == RegistryLabels(modelName: "m"))
        let set = try await client.setLabels(RegistryLabels(modelName: "m", stable: Int64(v1), reason: "by test"))
        #expect(set.stable == Int64(v1) && set.generation == 1 && set.reason == "by test" && !set.updated.isEmpty)
        #expect(await statusThrown { try await client.setLabels(RegistryLabels(modelName: "m", stable: Int64(v1), canary: Int64(v1))) }?.code == .aborted)
        #expect(await statusThrown { try await client.setLabels(RegistryLabels(modelName: "m", stable: 99, generation: 1)) }?.code == .invalidArgument)
        #expect(await statusThrown { try await client.setLabels(RegistryLabels(modelName: "m", stable: -1, generation: 1)) }?.code == .invalidArgument)
        #expect(await statusThrown { try await client.setLabels(RegistryLabels(modelName: "../x", generation: 1)) }?.code == .invalidArgument)
        #expect(await statusThrown { _ = try await client.getLabels(model: "nope") }?.code == .notFound)
        #expect(try await client.getLabels(model: "m").generation == 1)

        // Version status.
        #expect(try await client.setVersionStatus(model: "m", version: Int64(v1), status: "rolled_back", reason: "test") == "rolled_back")
        #expect(try ModelRepository(root: remote.url).lineage(of: "m", version: v1).status == .rolledBack)
        #expect(await statusThrown { try await client.setVersionStatus(model: "m", version: Int64(v1), status: "retired") }?.code == .invalidArgument)
        #expect(await statusThrown { try await client.setVersionStatus(model: "m", version: 42, status: "validated") }?.code == .notFound)
        #expect(try await client.getVersionStatus(model: "m", version: Int64(v1)) == VersionStatus(status: "rolled_back", reason: "test"))
        #expect(await statusThrown { _ = try await client.getVersionStatus(model: "m", version: 42) }?.code == .notFound)
        #expect(await statusThrown { _ = try await client.getVersionStatus(model: "../m", version: 1) }?.code == .invalidArgument)

        // FetchVersion: unknown versions, and the chunks of a file spanning several.
        #expect(await statusThrown { for try await _ in client.fetchVersion(model: "m", version: 2) {} }?.code == .notFound)
        #expect(await statusThrown { for try await _ in client.fetchVersion(model: "zz", version: 1) {} }?.code == .notFound)
        var files: [String: [UInt8]] = [:]
        var trailers: [String: VersionChunk] = [:]
        for try await chunk in client.fetchVersion(model: "m", version: Int64(v1)) {
            #expect(chunk.data.count <= 256 << 10)
            #expect(chunk.offset == UInt64(files[chunk.file, default: []].count))
            files[chunk.file, default: []] += chunk.data
            if chunk.last { trailers[chunk.file] = chunk }
        }
        #expect(files.keys.sorted() == ["extra.bin", "metadata.json", "model.onnx"])
        #expect(files["extra.bin"] == big)
        for (name, bytes) in files {
            #expect(trailers[name]?.sha256 == hex(bytes) && trailers[name]?.fileSize == UInt64(bytes.count))
        }

        // Watch: the snapshot lists the wanted version with every file's digest.
        let first: [RegistryModel] = try await withTimeout(.seconds(10), "the Watch snapshot") {
            var got: [RegistryModel] = []
            for try await m in client.registryWatch() {
                got.append(m)
                if m.endOfSnapshot { break }
            }
            return got
        }
        #expect(first.count == 2 && first[1].endOfSnapshot, "\(first)")
        let listed = try #require(first.first?.versions.first)
        #expect(listed.version == Int64(v1) && listed.status == "rolled_back")
        #expect(listed.files.map(\.name) == ["extra.bin", "metadata.json", "model.onnx"])
        #expect(listed.files.first { $0.name == "extra.bin" }?.sha256 == hex(big))
        #expect(first[0].labels?.stable == Int64(v1))

        service.shutdown()
        await server.shutdownGracefully(timeout: .seconds(2))
    }

    @Test func versionsBreakingALimitAreNotListedNorSent() async throws {
        let remote = try TemporaryDirectory(prefix: "swerve-registry-remote")
        let small = try ModelPublisher.publish(onnx: registryTestModel(), repository: remote.url, name: "small", lineage: sampleLineage())
        _ = try ModelPublisher.publish(onnx: registryTestModel(), repository: remote.url, name: "wide", lineage: sampleLineage())
        for i in 0..<10 { try Data([1]).write(to: remote.appending("wide/1/extra\(i)")) }
        let big = try ModelPublisher.publish(onnx: registryTestModel(), repository: remote.url, name: "big", lineage: sampleLineage())
        try Data(count: 5000).write(to: remote.appending("big/\(big)/weights.bin"))
        var limits = RegistryLimits()
        limits.maxFilesPerVersion = 8
        limits.maxFileBytes = 4096
        let (server, service) = try await startRegistry(remote.url, limits: limits)
        let client = try await SwerveClient.connect(host: "127.0.0.1", port: server.port, defaultTimeout: .seconds(10))
        let snapshot: [String] = try await withTimeout(.seconds(20), "the Watch snapshot") {
            var names: [String] = []
            for try await m in client.registryWatch() {
                if m.endOfSnapshot { break }
                names.append(m.modelName)
            }
            return names
        }
        #expect(snapshot == ["small"], "a folder of too many files or a file above the limit is not listed")
        #expect(small == 1)
        let tooWide = await statusThrown { for try await _ in client.fetchVersion(model: "wide", version: 1) {} }
        #expect(tooWide?.code == .failedPrecondition)
        let tooBig = await statusThrown { for try await _ in client.fetchVersion(model: "big", version: Int64(big)) {} }
        #expect(tooBig?.code == .failedPrecondition && tooBig?.message.contains("4096") == true, "\(String(describing: tooBig))")
        await client.close()
        service.shutdown()
        await server.shutdownGracefully(timeout: .seconds(2))
    }

    @Test func watchersAreBounded() async throws {
        let remote = try TemporaryDirectory(prefix: "swerve-registry-remote")
        _ = try ModelPublisher.publish(onnx: registryTestModel(), repository: remote.url, name: "m", lineage: sampleLineage())
        var limits = RegistryLimits()
        limits.maxWatchers = 1
        let (server, service) = try await startRegistry(remote.url, limits: limits)
        let client = try await SwerveClient.connect(host: "127.0.0.1", port: server.port, defaultTimeout: .seconds(10))
        let open = Task { for try await _ in client.registryWatch() {} }
        try await waitUntil("one Watch is open") { service.watcherCount == 1 }
        #expect(await statusThrown { for try await _ in client.registryWatch() {} }?.code == .resourceExhausted)
        open.cancel()
        try await waitUntil("the cancelled Watch is gone") { service.watcherCount == 0 }
        let again: Bool = try await withTimeout(.seconds(10), "a new Watch once there is room") {
            for try await m in client.registryWatch() where m.endOfSnapshot { return true }
            return false
        }
        #expect(again)
        // Shutdown ends open Watch streams with UNAVAILABLE.
        let watching = Task { await statusThrown { for try await _ in client.registryWatch() {} } }
        try await waitUntil("the Watch is open") { service.watcherCount == 1 }
        service.shutdown()
        #expect(await watching.value?.code == .unavailable)
        await client.close()
        await server.shutdownGracefully(timeout: .seconds(2))
    }
}
