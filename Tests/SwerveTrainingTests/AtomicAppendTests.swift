import Foundation
import SwerveRepository
import SwerveTesting
import Testing
@testable import SwerveTraining

/// Appends of several examples are all or nothing across a crash, and a retry with an
/// idempotency key of an append that landed is answered with its original sequence numbers.
@Suite struct AtomicAppendTests {
    @Test func aBatchGetsConsecutiveNumbersAndReadsBack() throws {
        let dir = try registryTestDirectory("wal-batch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = try ExampleLog(directory: dir)
        #expect(try log.append([0]) == 1)
        #expect(try log.append(batch: [[1], [2], [3]]) == 2)
        #expect(try log.append([4]) == 5)
        #expect(try log.read(from: 1).map(\.payload) == [[0], [1], [2], [3], [4]])
        #expect(throws: StorageError.self) { try log.append(batch: []) }
        log.close()
        let reopened = try ExampleLog(directory: dir)
        #expect(reopened.recovery.records == 5 && reopened.recovery.truncatedBytes == 0)
    }

    /// A crash at every byte inside a five-record append: recovery keeps what came before and
    /// none of the append, and says why.
    @Test func everyCutInsideABatchDropsTheWholeBatch() throws {
        let dir = try registryTestDirectory("wal-batch")
        defer { try? FileManager.default.removeItem(at: dir) }
        var full: [UInt8] = []
        let batch = (0..<5).map { Array("example \($0)".utf8) }
        let unitBytes = batch.reduce(0) { $0 + ExampleLog.headerSize + $1.count }
        do {
            let log = try ExampleLog(directory: dir)
            try log.append(Array("before".utf8))
            try log.append(batch: batch)
            full = try [UInt8](Data(contentsOf: log.segmentFiles.last!))
            log.close()
        }
        let segment = try ExampleLog.listSegments(dir.path).last!.path
        for cut in 1..<unitBytes {
            try Data(full.prefix(full.count - cut)).write(to: URL(fileURLWithPath: segment))
            let log = try ExampleLog(directory: dir)
            #expect(log.recovery.records == 1, "cut \(cut)")
            #expect(log.recovery.truncatedBytes == unitBytes - cut, "cut \(cut)")
            #expect(log.recovery.truncationReason?.contains("append cut short") == true || cut > unitBytes - (ExampleLog.headerSize + batch[0].count),
                    "cut \(cut): \(log.recovery.truncationReason ?? "nil")")
            #expect(try log.read(from: 1).map(\.payload) == [Array("before".utf8)])
            // Appends go on after the cut, from the next number.
            #expect(try log.append([7]) == 2)
            log.close()
        }
        // Whole, it is all there.
        try Data(full).write(to: URL(fileURLWithPath: segment))
        let log = try ExampleLog(directory: dir)
        #expect(log.recovery.records == 6)
        #expect(try log.read(from: 2).map(\.payload) == batch)
    }

    /// A batch that would not fit in the active segment starts a new one, so no segment ends
    /// inside an append; one larger than a segment is refused.
    @Test func aBatchNeverSpansSegments() throws {
        let dir = try registryTestDirectory("wal-batch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = try ExampleLog(directory: dir, options: .init(maxSegmentBytes: 200))
        let payload = [UInt8](repeating: 1, count: 24)  // 40 bytes a record
        try log.append(batch: [payload, payload, payload])  // 120 bytes
        try log.append(batch: [payload, payload, payload])  // 120 more would pass 200: a new segment
        #expect(log.segmentFiles.count == 2)
        #expect(try ExampleLog.listSegments(dir.path).map(\.first) == [1, 4])
        #expect(throws: StorageError.self) { try log.append(batch: Array(repeating: payload, count: 6)) }
        #expect(try log.read(from: 1).count == 6)
        log.close()
        let reopened = try ExampleLog(directory: dir, options: .init(maxSegmentBytes: 200))
        #expect(reopened.recovery.records == 6 && reopened.recovery.truncatedBytes == 0)
    }

    @Test func aKeyedRetryIsAnsweredWithTheOriginalNumbers() throws {
        let dir = try registryTestDirectory("wal-keys")
        defer { try? FileManager.default.removeItem(at: dir) }
        let examples = (0..<4).map { LabelledExample(features: ["x": String($0)], label: "a") }
        do {
            let appender = ExampleAppender(log: try ExampleLog(directory: dir))
            #expect(try appender.append([LabelledExample(features: [:], label: "0")]) == .init(firstSequence: 1, count: 1, replayed: false))
            #expect(try appender.append(examples, key: "req-1") == .init(firstSequence: 2, count: 4, replayed: false))
            #expect(try appender.append(examples, key: "req-1") == .init(firstSequence: 2, count: 4, replayed: true))
            #expect(try appender.append(examples, key: "req-2") == .init(firstSequence: 6, count: 4, replayed: false))
            // Unkeyed appends are never deduplicated.
            #expect(try appender.append(examples).firstSequence == 10)
            #expect(throws: StorageError.self) { try appender.append(Array(examples.prefix(2)), key: "req-1") }
            #expect(throws: StorageError.self) { try appender.append(examples, key: String(repeating: "k", count: 129)) }
            #expect(throws: StorageError.self) { try appender.append([], key: "req-3") }
            #expect(try appender.log.read(from: 1).count == 13)
            appender.log.close()
        }
        // After a restart the keys are read back from the log.
        let appender = ExampleAppender(log: try ExampleLog(directory: dir))
        #expect(try appender.append(examples, key: "req-2") == .init(firstSequence: 6, count: 4, replayed: true))
        #expect(try appender.append(examples, key: "req-1") == .init(firstSequence: 2, count: 4, replayed: true))
        #expect(try appender.append(examples, key: "req-3") == .init(firstSequence: 14, count: 4, replayed: false))
        let records = try appender.log.read(from: 1)
        #expect(records.count == 17)
        // The key rides on the append's first example only; the others read back as sent.
        #expect(try records[1].example().appendKey == "req-1" && records[1].example().appendCount == 4)
        #expect(try records[2].example() == examples[1])
    }
}
