import Foundation
import SwerveProto
import SwerveRegistry
import SwerveRepository
import SwerveTesting
import Testing

@Suite struct VersionFilesTests {
    @Test func digestsAreCachedUntilTheFileChanges() throws {
        let dir = try TemporaryDirectory(prefix: "swerve-version-files")
        let file = dir.appending("model.onnx")
        try Data([1, 2, 3]).write(to: file)
        let files = VersionFiles()
        let first = try files.list(dir.url)
        #expect(first == [RegistryFile(name: "model.onnx", size: 3, sha256: SHA256.hash([1, 2, 3]).map { String(format: "%02x", $0) }.joined())])
        #expect(files.hashCount == 1)
        _ = try files.list(dir.url)
        #expect(files.hashCount == 1, "an unchanged file is not hashed again")
        try Data([1, 2, 3, 4]).write(to: file)
        let second = try files.list(dir.url)
        #expect(files.hashCount == 2)
        #expect(second[0].size == 4)
        #expect(second[0].sha256 == SHA256.hash([1, 2, 3, 4]).map { String(format: "%02x", $0) }.joined())
    }
}
