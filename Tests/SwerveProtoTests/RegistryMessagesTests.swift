import Testing
@testable import SwerveProto

@Suite struct RegistryMessagesTests {
    @Test func registryMessagesRoundTrip() throws {
        let labels = RegistryLabels(modelName: "ads", stable: 3, canary: 4, canaryPercent: 12.5, previousStable: 2, generation: 7,
                                    reason: "rollout step 2", updated: "2026-12-04T21:00:00Z")
        #expect(try RegistryLabels(serializedBytes: labels.serializedBytes()) == labels)
        #expect(try RegistryLabels(serializedBytes: RegistryLabels().serializedBytes()) == RegistryLabels())

        let model = RegistryModel(
            modelName: "ads", config: Array(#"{"max_batch_size": 8}"#.utf8), labels: labels,
            versions: [
                RegistryVersion(version: 3, status: "serving", files: [
                    RegistryFile(name: "metadata.json", size: 120, sha256: String(repeating: "a", count: 64)),
                    RegistryFile(name: "model.onnx", size: 1 << 33, sha256: String(repeating: "0", count: 64)),
                ]),
                RegistryVersion(version: 4, status: "candidate", files: []),
            ])
        #expect(try RegistryModel(serializedBytes: model.serializedBytes()) == model)
        let removed = RegistryModel(modelName: "gone", removed: true)
        #expect(try RegistryModel(serializedBytes: removed.serializedBytes()) == removed)
        let end = RegistryModel(endOfSnapshot: true)
        #expect(try RegistryModel(serializedBytes: end.serializedBytes()) == end)
        #expect(try RegistryModel(serializedBytes: end.serializedBytes()).labels == nil)

        let chunk = VersionChunk(file: "model.onnx", offset: 262_144, data: Array(0..<255), last: true, fileSize: 262_399,
                                 sha256: String(repeating: "f", count: 64))
        #expect(try VersionChunk(serializedBytes: chunk.serializedBytes()) == chunk)
        #expect(try VersionChunk(serializedBytes: VersionChunk(file: "empty").serializedBytes()) == VersionChunk(file: "empty"))

        #expect(try RegistryWatchRequest(serializedBytes: RegistryWatchRequest(modelName: "m").serializedBytes()) == RegistryWatchRequest(modelName: "m"))
        #expect(try FetchVersionRequest(serializedBytes: FetchVersionRequest(modelName: "m", version: 9).serializedBytes())
            == FetchVersionRequest(modelName: "m", version: 9))
        #expect(try LabelsRequest(serializedBytes: LabelsRequest(modelName: "m").serializedBytes()) == LabelsRequest(modelName: "m"))
        let set = SetLabelsRequest(labels: labels, force: true)
        #expect(try SetLabelsRequest(serializedBytes: set.serializedBytes()) == set)
        let status = SetVersionStatusRequest(modelName: "m", version: 2, status: "rolled_back", reason: "p99 1.8x stable")
        #expect(try SetVersionStatusRequest(serializedBytes: status.serializedBytes()) == status)
        #expect(try SetVersionStatusResponse(serializedBytes: SetVersionStatusResponse(status: "validated").serializedBytes())
            == SetVersionStatusResponse(status: "validated"))
    }

    @Test func hostileRegistryBytesAreRefused() {
        // A truncated message, a string with a NUL inside a nested file name, a wrong wire type.
        // versions[0].files[0].name = "a\0b", byte by byte (our encoder cannot write a NUL).
        let file: [UInt8] = [0x0A, 3, UInt8(ascii: "a"), 0, UInt8(ascii: "b")]
        let version: [UInt8] = [0x1A, UInt8(file.count)] + file
        #expect(throws: ProtoDecodingError.self) { try RegistryModel(serializedBytes: [0x2A, UInt8(version.count)] + version) }
        let chunk = VersionChunk(file: "model.onnx", data: Array(repeating: 7, count: 100)).serializedBytes()
        #expect(throws: ProtoDecodingError.self) { try VersionChunk(serializedBytes: Array(chunk.dropLast(10))) }
        // field 2 (offset, a varint) sent as length-delimited
        #expect(throws: ProtoDecodingError.self) { try VersionChunk(serializedBytes: [0x12, 1, 0]) }
        #expect(throws: ProtoDecodingError.self) { try SetLabelsRequest(serializedBytes: [0x0A, 4, 0x0A, 2, 0x61, 0]) }
    }
}
