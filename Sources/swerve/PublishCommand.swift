import ArgumentParser
import Dispatch
import Foundation
import SwerveRepository
import SwerveTraining

/// `swerve publish model.onnx --repository DIR --name M`: puts a model trained elsewhere
/// (skl2onnx, torch.onnx) into the repository as the next version, with a lineage record.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish an ONNX model as the next version of a model in the repository (write to a temporary folder, fsync, rename).")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .long, help: "The model repository directory.")
    var repository: String

    @Option(name: .long, help: "The model's name in the repository.")
    var name: String

    @Option(name: .long, parsing: .upToNextOption, help: "Lineage key=value pairs (repeatable), e.g. --metadata trained_by=alice framework=sklearn.")
    var metadata: [String] = []

    @Option(name: .long, help: "The version this one replaces or was trained from.")
    var parentVersion: Int?

    @Option(name: .long, help: "Fingerprint of the training data, if known.")
    var dataFingerprint: String?

    @Option(name: .long, help: "A reference_stats.json (distribution of the training data) to store beside the model for skew checks.")
    var referenceStats: String?

    @Flag(name: .long, help: "Also make it the serving version (config.json version_policy specific: [new version]).")
    var promote = false

    @Option(name: .long, help: .hidden)
    var pauseBeforeRename: Double?

    func validate() throws {
        for pair in metadata where !pair.contains("=") || pair.hasPrefix("=") {
            throw ValidationError("--metadata takes key=value pairs, got '\(pair)'")
        }
    }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: model) else {
            throw ValidationError("cannot read \(model)")
        }
        var extra: [String: String] = ["file": URL(fileURLWithPath: model).lastPathComponent]
        for pair in metadata {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            extra[String(parts[0])] = String(parts[1])
        }
        var lineage = Lineage(
            source: "external", dataFingerprint: dataFingerprint, parentVersion: parentVersion,
            origin: .current(jobID: extra["job_id"]), extra: extra)
        lineage.timestamps.finished = (try? FileManager.default.attributesOfItem(atPath: model))?[.modificationDate] as? Date
        var reference: Data?
        if let referenceStats {
            guard let bytes = FileManager.default.contents(atPath: referenceStats) else {
                throw ValidationError("cannot read \(referenceStats)")
            }
            _ = try ReferenceStatistics.decode(bytes)
            reference = bytes
        }
        var options = ModelPublisher.Options()
        if let pause = pauseBeforeRename {
            options.beforeRename = { staged in
                printUnbuffered("staged \(staged.path)")
                Thread.sleep(forTimeInterval: pause)
            }
        }
        let repositoryURL = URL(fileURLWithPath: repository, isDirectory: true)
        let version = try ModelPublisher.publish(
            onnx: [UInt8](data), repository: repositoryURL, name: name, lineage: lineage,
            referenceStatistics: reference, options: options)
        if promote {
            try ModelRegistry(repository: repositoryURL).promote(model: name, version: version, reason: "swerve publish --promote")
        }
        print("published \(name) version \(version) (\(ContentFingerprint.sha256(data)))\(promote ? ", serving" : "")")
    }
}

/// `swerve wal-stress --dir D --count N`: appends N examples to an example log from
/// `--threads` threads, printing `ack <sequence> <id>` as each append returns. A test kills it
/// with SIGKILL and checks that every acknowledged example survived.
struct WalStressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-stress", abstract: "Append examples to an example log, printing each acknowledged sequence number (durability tests).",
        shouldDisplay: false)

    @Option(name: .long, help: "The log directory.")
    var dir: String

    @Option(name: .long, help: "Examples to append in all.")
    var count: Int = 1000

    @Option(name: .long, help: "Appending threads.")
    var threads: Int = 4

    @Option(name: .long, help: "Padding bytes per example.")
    var payloadBytes: Int = 100

    @Option(name: .long, help: "Segment size limit in bytes.")
    var segmentBytes: Int = 64 << 10

    func run() throws {
        let log = try ExampleLog(directory: URL(fileURLWithPath: dir, isDirectory: true),
                                 options: ExampleLog.Options(maxSegmentBytes: segmentBytes))
        printUnbuffered("recovered \(log.recovery.records) truncated \(log.recovery.truncatedBytes)")
        let out = NSLock()
        let failures = NSLock()
        nonisolated(unsafe) var firstError: (any Error)?
        let threads = max(1, self.threads)
        let padding = String(repeating: "x", count: max(0, payloadBytes))
        let total = count
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var i = t
            while i < total {
                let id = "\(t)-\(i)"
                do {
                    let seq = try log.append(example: LabelledExample(features: ["i": String(i), "pad": padding], label: String(i % 2), id: id))
                    out.lock()
                    printUnbuffered("ack \(seq) \(id)")
                    out.unlock()
                } catch {
                    failures.lock()
                    if firstError == nil { firstError = error }
                    failures.unlock()
                    return
                }
                i += threads
            }
        }
        if let firstError { throw firstError }
        printUnbuffered("done")
    }
}

/// Writes a line straight to file descriptor 1 (no stdio buffer), so a process killed right
/// after has already said it.
private func printUnbuffered(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
