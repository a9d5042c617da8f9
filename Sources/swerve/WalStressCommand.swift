import ArgumentParser
import Dispatch
import Foundation
import SwerveRepository
import SwerveTraining

/// `swerve wal-stress --dir D --count N`: appends N examples to an example log from
/// `--threads` threads, printing `ack <sequence> <id>` as each append returns. A test kills it
/// with SIGKILL and checks that every acknowledged example survived. With `--batch B` each
/// append is a unit of B examples (ids `<thread>-<i>/<k>`), which must survive whole or not at all.
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

    @Option(name: .long, help: "Examples per append (each append all or nothing).")
    var batch: Int = 1

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
                    if batch > 1 {
                        let encoder = JSONEncoder()
                        let ids = (0..<batch).map { "\(id)/\($0)" }
                        let payloads = try ids.map {
                            Array(try encoder.encode(LabelledExample(features: ["i": String(i), "pad": padding], label: String(i % 2), id: $0)))
                        }
                        let first = try log.append(batch: payloads)
                        out.lock()
                        for (k, x) in ids.enumerated() { printUnbuffered("ack \(first + UInt64(k)) \(x)") }
                        out.unlock()
                    } else {
                        let seq = try log.append(example: LabelledExample(features: ["i": String(i), "pad": padding], label: String(i % 2), id: id))
                        out.lock()
                        printUnbuffered("ack \(seq) \(id)")
                        out.unlock()
                    }
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
func printUnbuffered(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
