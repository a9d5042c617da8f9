import Foundation
import SwerveRepository
import SwerveTesting
import Testing
@testable import SwerveTraining

@Suite struct IngestLogTests {
    func segmentBytes(_ log: ExampleLog) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: log.segmentFiles.last!))
    }

    @Test func appendReadAndReopen() throws {
        let dir = try registryTestDirectory("wal")
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let log = try ExampleLog(directory: dir)
            #expect(try log.append(example: LabelledExample(features: ["x": "1"], label: "a", id: "e1")) == 1)
            #expect(try log.append(Array("raw".utf8)) == 2)
            let records = try log.read(from: 1)
            #expect(records.map(\.sequence) == [1, 2])
            #expect(try records[0].example() == LabelledExample(features: ["x": "1"], label: "a", id: "e1"))
            #expect(try log.read(from: 2).map(\.payload) == [Array("raw".utf8)])
            #expect(try log.read(from: 3).isEmpty)
            #expect(try log.read(from: 1, limit: 1).count == 1)
            // A second opener (another process) is refused while this one is open.
            #expect(throws: StorageError.self) { try ExampleLog(directory: dir) }
            log.close()
            #expect(throws: StorageError.self) { try log.append([1]) }
        }
        let reopened = try ExampleLog(directory: dir)
        #expect(reopened.recovery == .init(segments: 1, records: 2, truncatedBytes: 0, truncationReason: nil))
        #expect(try reopened.append([9]) == 3)
        #expect(try reopened.read(from: 1).map(\.sequence) == [1, 2, 3])
    }

    @Test func tornTailIsTruncated() throws {
        let dir = try registryTestDirectory("wal")
        defer { try? FileManager.default.removeItem(at: dir) }
        var full: [UInt8] = []
        do {
            let log = try ExampleLog(directory: dir)
            for i in 0..<3 { try log.append(Array("example \(i)".utf8)) }
            full = try segmentBytes(log)
            log.close()
        }
        let segment = try ExampleLog.listSegments(dir.path).last!.path
        let recordSize = ExampleLog.headerSize + "example 0".utf8.count
        // Every cut inside the last record, plus garbage after a whole record.
        for cut in 1..<recordSize {
            try Data(full.prefix(full.count - cut)).write(to: URL(fileURLWithPath: segment))
            let log = try ExampleLog(directory: dir)
            #expect(log.recovery.records == 2)
            #expect(log.recovery.truncatedBytes == recordSize - cut)
            #expect(try log.read(from: 1).map(\.sequence) == [1, 2])
            log.close()
            #expect(try Data(contentsOf: URL(fileURLWithPath: segment)).count == 2 * recordSize)
        }
        try Data(full + [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).write(to: URL(fileURLWithPath: segment))
        let log = try ExampleLog(directory: dir)
        #expect(log.recovery.records == 3)
        #expect(log.recovery.truncatedBytes == 17)
        #expect(try log.append([7]) == 4)
        #expect(try log.read(from: 4).first?.payload == [7])
    }

    @Test func crcMismatchIsDetected() throws {
        let dir = try registryTestDirectory("wal")
        defer { try? FileManager.default.removeItem(at: dir) }
        var bytes: [UInt8] = []
        do {
            let log = try ExampleLog(directory: dir)
            for i in 0..<4 { try log.append(Array("payload-\(i)".utf8)) }
            bytes = try segmentBytes(log)
            log.close()
        }
        let recordSize = ExampleLog.headerSize + "payload-0".utf8.count
        // Flip one payload bit in the third record: records 1-2 survive, 3-4 are cut.
        bytes[2 * recordSize + ExampleLog.headerSize + 3] ^= 0x10
        let segment = try ExampleLog.listSegments(dir.path).last!.path
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let scan = ExampleLog.scan(bytes, firstSequence: 1, maxRecordBytes: 1 << 20)
        #expect(scan.records.count == 2)
        #expect(scan.stopReason?.contains("CRC mismatch") == true)
        let log = try ExampleLog(directory: dir)
        #expect(log.recovery.records == 2)
        #expect(log.recovery.truncationReason?.contains("CRC") == true)
        #expect(try log.append([1]) == 3)
        // The CRC matches zlib's (an independent implementation checks the log in IntegrationTests/interop).
        #expect(RecordCRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func damageInSealedSegmentIsAnErrorNotSilentLoss() throws {
        let dir = try registryTestDirectory("wal")
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let log = try ExampleLog(directory: dir, options: .init(maxSegmentBytes: 64))
            for i in 0..<6 { try log.append(Array("record-\(i)".utf8)) }
            #expect(log.segmentFiles.count >= 3)
            log.close()
        }
        let first = try ExampleLog.listSegments(dir.path).first!.path
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: first)))
        bytes[ExampleLog.headerSize] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: first))
        #expect(throws: StorageError.self) { try ExampleLog(directory: dir) }
    }

    @Test func segmentsRotateAndCompact() throws {
        let dir = try registryTestDirectory("wal")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = try ExampleLog(directory: dir, options: .init(maxSegmentBytes: 100))
        for i in 1...20 { #expect(try log.append(Array("r\(i)-padding-padding".utf8)) == UInt64(i)) }
        let segments = log.segmentFiles.count
        #expect(segments > 3)
        for file in log.segmentFiles.dropLast() {
            #expect(try Data(contentsOf: file).count <= 100)
        }
        #expect(try log.read(from: 7).map(\.sequence) == Array(7...20).map(UInt64.init))
        let removed = try log.removeSegments(before: 15)
        #expect(removed > 0)
        #expect(log.segmentFiles.count == segments - removed)
        #expect(try log.read(from: 15).map(\.sequence) == Array(15...20).map(UInt64.init))
        log.close()
        let reopened = try ExampleLog(directory: dir, options: .init(maxSegmentBytes: 100))
        #expect(try reopened.append([1]) == 21)
        // Compaction never removes the active segment, so numbering never restarts.
        try reopened.removeSegments(before: 1000)
        #expect(reopened.segmentFiles.count == 1)
        #expect(try reopened.append([2]) == 22)
    }

    @Test func groupCommitAcknowledgesEveryAppendInOrder() async throws {
        let dir = try registryTestDirectory("wal")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = try ExampleLog(directory: dir, options: .init(maxSegmentBytes: 4096))
        let perTask = 200
        let results = try await withThrowingTaskGroup(of: [(UInt64, String)].self) { group in
            for t in 0..<8 {
                group.addTask {
                    var acks: [(UInt64, String)] = []
                    for i in 0..<perTask {
                        let id = "\(t)-\(i)"
                        let seq = try log.append(Array(id.utf8))
                        // Acknowledged means durable: fsync covered it before append returned.
                        #expect(log.lastDurableSequence >= seq)
                        acks.append((seq, id))
                    }
                    return acks
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(results.count == 8 * perTask)
        #expect(Set(results.map(\.0)) == Set(1...UInt64(8 * perTask)))
        // Each task's own appends got increasing sequence numbers (per-producer order is kept).
        for t in 0..<8 {
            let mine = results.filter { $0.1.hasPrefix("\(t)-") }.map(\.0)
            #expect(mine == mine.sorted())
        }
        let stored = try log.read(from: 1)
        let byID = Dictionary(uniqueKeysWithValues: stored.map { (String(decoding: $0.payload, as: UTF8.self), $0.sequence) })
        for (seq, id) in results { #expect(byID[id] == seq) }
    }

    @Test func checkpointResumesConsumer() throws {
        let dir = try registryTestDirectory("wal")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = try ExampleLog(directory: dir.appendingPathComponent("log"))
        for i in 1...10 { try log.append(Array("e\(i)".utf8)) }
        let checkpoint = LogCheckpoint(file: dir.appendingPathComponent("state/consumer.json"))
        #expect(try checkpoint.load() == nil)

        // First run consumes 4 and checkpoints, then "crashes".
        let first = try log.read(from: checkpoint.load() ?? 1, limit: 4)
        try checkpoint.save(nextSequence: first.last!.sequence + 1)
        // Restart: a new checkpoint reader resumes at 5.
        let resumed = LogCheckpoint(file: checkpoint.file)
        let next = try #require(try resumed.load())
        #expect(next == 5)
        #expect(try log.read(from: next).map { String(decoding: $0.payload, as: UTF8.self) } == (5...10).map { "e\($0)" })
        try Data("{garbage".utf8).write(to: checkpoint.file)
        #expect(throws: StorageError.self) { try checkpoint.load() }
    }
}

@Suite struct IngestDirectoryTests {
    @Test func pollsNewFilesOnceAndResumesFromState() throws {
        let dir = try registryTestDirectory("ingest")
        defer { try? FileManager.default.removeItem(at: dir) }
        let inbox = dir.appendingPathComponent("inbox")
        try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
        let state = dir.appendingPathComponent("state/ingest.json")
        try Data("a,b\n1,2\n".utf8).write(to: inbox.appendingPathComponent("2025-01-01.csv"))
        try Data("a,b\n3,4\n".utf8).write(to: inbox.appendingPathComponent("2025-01-02.csv"))
        try Data("ignored".utf8).write(to: inbox.appendingPathComponent("notes.txt"))
        try Data("partial".utf8).write(to: inbox.appendingPathComponent(".upload.csv"))
        let later = Date().addingTimeInterval(10)

        let ingest = try DirectoryIngest(directory: inbox, stateFile: state, settleTime: 2)
        #expect(try ingest.pendingFiles().isEmpty)  // too fresh: may still be written
        var seen: [String] = []
        try ingest.pollOnce(now: later) { seen.append($0.lastPathComponent) }
        #expect(seen == ["2025-01-01.csv", "2025-01-02.csv"])
        #expect(try ingest.pollOnce(now: later) { _ in Issue.record("nothing new") }.isEmpty)

        // A restarted job reads the state file and does not redo anything.
        let restarted = try DirectoryIngest(directory: inbox, stateFile: state, settleTime: 2)
        #expect(try restarted.pendingFiles(now: later).isEmpty)
        try Data("a,b\n5,6\n".utf8).write(to: inbox.appendingPathComponent("2025-01-03.csv"))
        // A failing handler leaves the file pending.
        struct Fail: Error {}
        #expect(throws: Fail.self) { try restarted.pollOnce(now: later.addingTimeInterval(10)) { _ in throw Fail() } }
        #expect(try restarted.pendingFiles(now: later.addingTimeInterval(10)).map(\.lastPathComponent) == ["2025-01-03.csv"])
        try restarted.pollOnce(now: later.addingTimeInterval(10)) { _ in }
        #expect(restarted.isProcessed(inbox.appendingPathComponent("2025-01-03.csv")))
        // A file rewritten after it was handled counts as new.
        try Data("a,b\n1,2\n7,8\n".utf8).write(to: inbox.appendingPathComponent("2025-01-01.csv"))
        #expect(try restarted.pendingFiles(now: later.addingTimeInterval(20)).map(\.lastPathComponent) == ["2025-01-01.csv"])
    }
}
