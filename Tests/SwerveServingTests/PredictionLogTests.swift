import Foundation
import Logging
import SwerveRepository
import SwerveTesting
import Testing
@testable import SwerveServing

/// The sampled prediction log: written off the request path, bounded on disk, recovered after a
/// crash, and never a wait for serving when its disk fails.
@Suite struct PredictionLogTests {
    let logger = Logger(label: "prediction-log-test")

    func entry(_ i: Int, bytes: Int = 100) -> PredictionLog.Entry {
        PredictionLog.Entry(timeMs: UInt64(1_000 + i), model: "m", version: 1, id: "req-\(i)",
                            request: Data(repeating: UInt8(i & 0xFF), count: bytes), response: Data("answer \(i)".utf8))
    }

    /// Waits (bounded) until the writer has written `n` records in all; async, so the wait holds
    /// no thread of the test runner's pool.
    func waitWritten(_ log: PredictionLog, _ n: UInt64) async throws {
        try await waitUntil("the writer wrote \(n) records", timeout: .seconds(30), poll: .milliseconds(2)) { log.counts.written >= n }
    }

    @Test func recordsReadBackInOrderAndAfterReopen() async throws {
        let dir = try registryTestDirectory("plog")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = try PredictionLog(directory: dir, model: "m", maxBytes: 1 << 20, sampleRate: 1, logger: logger)
        for i in 0..<50 { log.offer(entry(i)) }
        try await waitWritten(log, 50)
        log.close()
        let read = try PredictionLog.read(dir)
        #expect(read.map(\.sequence) == Array(1...50))
        #expect(read.map(\.entry) == (0..<50).map { entry($0) })
        // Reopened, it goes on after the last record.
        let again = try PredictionLog(directory: dir, model: "m", maxBytes: 1 << 20, sampleRate: 1, logger: logger)
        again.offer(entry(50))
        again.close()
        #expect(try PredictionLog.read(dir).map(\.sequence) == Array(1...51))
        // After close, offers are dropped (counted), not written.
        again.offer(entry(51))
        #expect(again.counts.droppedQueueFull == 1)
    }

    /// The segments together stay within max_bytes: the oldest go first, counted as evicted, and
    /// what is left is the newest records, consecutive.
    @Test func theLogStaysWithinItsByteBound() async throws {
        let dir = try registryTestDirectory("plog")
        defer { try? FileManager.default.removeItem(at: dir) }
        let maxBytes = 64 << 10
        let log = try PredictionLog(directory: dir, model: "m", maxBytes: maxBytes, sampleRate: 1, logger: logger)
        for i in 0..<2_000 {
            log.offer(entry(i, bytes: 300))
            if i % 100 == 99 { try await waitWritten(log, UInt64(i + 1) - log.counts.droppedQueueFull) }
        }
        log.close()
        let sizes = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".plog") }.map {
            try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($0).path)[.size] as! Int
        }
        #expect(sizes.reduce(0, +) <= maxBytes)
        let counts = log.counts
        #expect(counts.evicted > 0)
        let read = try PredictionLog.read(dir)
        #expect(UInt64(read.count) == counts.written - counts.evicted)
        #expect(read.last?.entry.id == "req-1999")
        #expect(zip(read, read.dropFirst()).allSatisfy { $1.sequence == $0.sequence + 1 })
    }

    /// A torn tail (a crash mid-write) is cut when the log is opened; every whole record before
    /// it is kept and appends go on after them.
    @Test func aTornTailIsCutOnOpen() throws {
        let dir = try registryTestDirectory("plog")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = try PredictionLog(directory: dir, model: "m", maxBytes: 1 << 20, sampleRate: 1, logger: logger)
        for i in 0..<10 { log.offer(entry(i)) }
        log.close()
        let segment = try PredictionLog.listSegments(dir.path).last!.path
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: segment))
        handle.seekToEndOfFile()
        handle.write(Data([0x40, 0, 0, 0, 1, 2, 3, 4, 11, 0, 0]))  // a header cut short
        try handle.close()
        let again = try PredictionLog(directory: dir, model: "m", maxBytes: 1 << 20, sampleRate: 1, logger: logger)
        again.offer(entry(10))
        again.close()
        #expect(try PredictionLog.read(dir).map(\.entry.id) == (0...10).map { "req-\($0)" })
    }

    /// Reopened with a smaller `max_bytes`, records written under the larger one (bigger than the
    /// new segment size) are kept, not cut as damaged, until the next write evicts the oldest to
    /// fit the new bound.
    @Test func aSmallerBoundLaterKeepsWhatIsThereUntilEvicted() async throws {
        let dir = try registryTestDirectory("plog")
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = try PredictionLog(directory: dir, model: "m", maxBytes: 4 << 20, sampleRate: 1, logger: logger)
        for i in 0..<20 { big.offer(entry(i, bytes: 20_000)) }
        try await waitWritten(big, 20)
        big.close()
        let small = try PredictionLog(directory: dir, model: "m", maxBytes: 64 << 10, sampleRate: 1, logger: logger)
        #expect(try PredictionLog.read(dir).count == 20)
        small.offer(entry(20))
        small.close()
        let read = try PredictionLog.read(dir)
        #expect(read.last?.entry.id == "req-20")
        #expect(zip(read, read.dropFirst()).allSatisfy { $1.sequence == $0.sequence + 1 })
        let size = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".plog") }.reduce(0) {
            $0 + (try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($1).path)[.size] as! Int)
        }
        #expect(size <= 64 << 10)
    }

    /// A disk that refuses every write (the segment is /dev/full: ENOSPC): records are dropped
    /// and counted, and `offer` never blocks.
    @Test func aFullDiskDropsRecordsWithoutBlocking() async throws {
        let dir = try registryTestDirectory("plog")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = try PredictionLog(directory: dir, model: "m", maxBytes: 1 << 20, sampleRate: 1, logger: logger)
        // The first segment, made before the first write opens it.
        let segment = PredictionLog.segmentPath(dir.path, first: 1)
        try FileManager.default.createSymbolicLink(atPath: segment, withDestinationPath: "/dev/full")
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<20_000 { log.offer(entry(i)) }
        let offerNs = DispatchTime.now().uptimeNanoseconds - start
        try await waitUntil("every record is dropped", timeout: .seconds(30), poll: .milliseconds(2)) {
            log.counts.droppedWriteError + log.counts.droppedQueueFull >= 20_000
        }
        let counts = log.counts
        #expect(counts.written == 0)
        #expect(counts.droppedWriteError + counts.droppedQueueFull == 20_000)
        #expect(counts.droppedWriteError > 0)
        // 20,000 offers queue or drop in memory: far under a second even on a slow machine
        // (a blocking write per offer would take longer than that).
        #expect(offerNs < 2_000_000_000, "offers took \(offerNs / 1_000_000) ms")
        log.close()
    }

    @Test func samplingTakesTheConfiguredShare() {
        for (rate, expected) in [(0.0, 0), (0.01, 100), (0.25, 2_500), (1.0, 10_000), (-1, 0), (7, 10_000)] {
            let sampler = PredictionSampler(rate: rate)
            #expect((0..<10_000).filter { _ in sampler.take() }.count == expected, "rate \(rate)")
        }
    }

    @Test func configParsesAndRefusesBadValues() throws {
        let ok = try ModelSettings(json: Data(#"{"prediction_log": {"sample_rate": 0.5, "max_bytes": 1048576}}"#.utf8))
        #expect(ok.predictionLog == .init(sampleRate: 0.5, maxBytes: 1 << 20))
        for bad in [#"{"prediction_log": {"sample_rate": 1.5, "max_bytes": 1048576}}"#,
                    #"{"prediction_log": {"sample_rate": 0.5, "max_bytes": 100}}"#,
                    #"{"prediction_log": {"sample_rate": 0.5}}"#,
                    #"{"prediction_log": {"sample_rate": 0.5, "max_bytes": 1048576, "dir": "/tmp"}}"#,
                    #"{"prediction_log": true}"#] {
            #expect(throws: StorageError.self, "\(bad)") { try ModelSettings(json: Data(bad.utf8)) }
        }
    }
}
