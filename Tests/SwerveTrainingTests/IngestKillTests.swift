import Foundation
import SwerveRepository
import SwerveTesting
import Testing
@testable import SwerveTraining

#if canImport(Glibc)
import Glibc
#endif

/// The `swerve` executable built beside this test bundle (or $SWERVE_BIN), if it has the
/// `wal-stress` and `publish` commands.
let ingestSwerveBinary: URL? = {
    var candidates: [URL] = []
    if let env = ProcessInfo.processInfo.environment["SWERVE_BIN"] { candidates.append(URL(fileURLWithPath: env)) }
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = me.deletingLastPathComponent()
    for _ in 0..<4 {
        candidates.append(dir.appendingPathComponent("swerve"))
        dir = dir.deletingLastPathComponent()
    }
    for url in candidates where FileManager.default.isExecutableFile(atPath: url.path) {
        let p = Process()
        p.executableURL = url
        p.arguments = ["wal-stress", "--help"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { continue }
        let help = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        // An unregistered subcommand with --help prints the root help and exits 0 too.
        if p.terminationStatus == 0 && help.contains("swerve wal-stress") { return url }
    }
    return nil
}()

/// Runs `swerve args`, collects stdout lines until `enough` says so (at most `timeout`
/// seconds), SIGKILLs it, and returns every line it printed before dying.
func runAndKill(_ args: [String], timeout: TimeInterval = 60, enough: ([String]) -> Bool) throws -> (lines: [String], killedEarly: Bool) {
    let process = Process()
    process.executableURL = ingestSwerveBinary!
    process.arguments = args
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let handle = pipe.fileHandleForReading
    var buffer = Data()
    var lines: [String] = []
    let deadline = Date().addingTimeInterval(timeout)
    var killed = false
    while Date() < deadline {
        let chunk = handle.availableData  // blocks until data or EOF
        if chunk.isEmpty { break }
        buffer.append(chunk)
        while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
            buffer.removeSubrange(buffer.startIndex...nl)
        }
        if enough(lines) {
            kill(process.processIdentifier, SIGKILL)
            killed = true
            break
        }
    }
    if !killed && process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    // Lines already in the pipe were printed after their append returned: they count too.
    buffer.append(handle.readDataToEndOfFile())
    for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
        lines.append(String(line))
    }
    return (lines, killed)
}

@Suite(.enabled(if: ingestSwerveBinary != nil, "needs a swerve binary with wal-stress/publish (SWERVE_BIN or beside the tests)"))
struct IngestKillTests {
    @Test func everyAcknowledgedExampleSurvivesSIGKILL() throws {
        let dir = try registryTestDirectory("wal-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        var acked: [UInt64: String] = [:]
        for round in 0..<3 {
            let run = try runAndKill(["wal-stress", "--dir", dir.path, "--count", "1000000", "--threads", "4", "--segment-bytes", "32768"]) {
                $0.filter { $0.hasPrefix("ack ") }.count >= 400
            }
            #expect(run.killedEarly)
            for line in run.lines where line.hasPrefix("ack ") {
                let parts = line.split(separator: " ")
                if parts.count == 3, let seq = UInt64(parts[1]) { acked[seq] = String(parts[2]) }
            }
            // Reopen (recovery) and check every acknowledged example, from this and earlier rounds.
            let log = try ExampleLog(directory: dir)
            let records = try log.read(from: 1)
            #expect(records.map(\.sequence) == (0..<records.count).map { UInt64($0 + 1) })
            let byID = Dictionary(uniqueKeysWithValues: try records.map { ($0.sequence, try $0.example().id ?? "") })
            var lost = 0
            for (seq, id) in acked where byID[seq] != id { lost += 1 }
            #expect(lost == 0, "acknowledged examples missing after SIGKILL")
            #expect(acked.count >= 400 * (round + 1))
            #expect(try log.append(example: LabelledExample(features: [:], label: "", id: "reopen-\(round)")) == UInt64(records.count + 1))
            log.close()
        }
    }

    @Test func publishKilledBeforeRenameLeavesNoPartialVersion() throws {
        let dir = try registryTestDirectory("publish-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("model.onnx")
        try Data(registryTestModel()).write(to: model)
        let repo = dir.appendingPathComponent("repo")
        _ = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage())

        let run = try runAndKill(["publish", model.path, "--repository", repo.path, "--name", "m", "--pause-before-rename", "60"]) {
            $0.contains { $0.hasPrefix("staged ") }
        }
        #expect(run.killedEarly)
        #expect(servedVersions(repo, "m") == [1])
        let temps = try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("m").path).filter { $0.hasPrefix(".tmp-") }
        #expect(temps.count == 1)  // staged, fully written, never renamed, invisible to the server

        // The dead publisher's lock is gone, and the next publish works and sweeps the stale folder.
        let v = try ModelPublisher.publish(onnx: registryTestModel(), repository: repo, name: "m", lineage: sampleLineage(),
                                           options: .init(staleTemporaryAge: 0))
        #expect(v == 2)
        #expect(servedVersions(repo, "m") == [1, 2])
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("m").path).filter { $0.hasPrefix(".tmp-") }.isEmpty)

        // And the command itself publishes with an external lineage.
        let done = try runAndKill(["publish", model.path, "--repository", repo.path, "--name", "m", "--metadata", "framework=sklearn", "owner=ml"]) { _ in false }
        #expect(done.lines.last?.hasPrefix("published m version 3") == true)
        let lineage = try ModelRegistry(repository: repo).lineage(of: "m", version: 3)
        #expect(lineage.source == "external")
        #expect(lineage.extra["framework"] == "sklearn")
        #expect(lineage.extra["owner"] == "ml")
        #expect(lineage.modelFingerprint == ContentFingerprint.sha256(registryTestModel()))
    }
}
