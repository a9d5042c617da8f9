import Foundation
import SwerveTesting
import Testing
@testable import SwerveTraining

#if canImport(Glibc)
import Glibc
#endif

/// The trainer's own file reads (CSV data, schemas, example-log segments) are bounded like the
/// repository's: only regular files (symlinks followed), never more than a stated size, never
/// blocking on a FIFO. Before, each of these read whatever was there, a link to /dev/zero until
/// memory ran out.
@Suite struct BoundedTrainingReadsTests {
    @Test func csvThatIsALinkToAnEndlessDeviceIsRefusedNotRead() throws {
        try withTemporaryDirectory { dir in
            let link = dir.appendingPathComponent("data.csv").path
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/dev/zero")
            let error = try #require(throws: TrainingError.self) { try CSVTable(contentsOfFile: link) }
            #expect(error.message.contains("not a regular file"), "\(error.message)")
        }
    }

    @Test func csvThroughASymlinkToARegularFileIsRead() throws {
        try withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("real.csv")
            try Data("x,y\n1,a\n".utf8).write(to: file)
            let link = dir.appendingPathComponent("data.csv").path
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file.path)
            #expect(try CSVTable(contentsOfFile: link).records.count == 1)
        }
    }

    @Test func schemaThatIsAFIFOIsRefusedAtOnce() throws {
        try withTemporaryDirectory { dir in
            let fifo = dir.appendingPathComponent("schema.json").path
            #expect(mkfifo(fifo, 0o644) == 0)
            // Without O_NONBLOCK the open would wait for a writer forever; a hang fails the run.
            let error = try #require(throws: TrainingError.self) { try DataSchema.load(path: fifo) }
            #expect(error.message.contains("FIFO"), "\(error.message)")
        }
    }

    @Test func oversizeSegmentIsRefusedNamingTheLimit() throws {
        try withTemporaryDirectory { dir in
            let options = ExampleLog.Options(maxSegmentBytes: 4096, maxRecordBytes: 1024)
            let limit = options.maxSegmentBytes + ExampleLog.headerSize + options.maxRecordBytes
            // A sparse file: it claims 1 GiB and takes no disk.
            let segment = ExampleLog.segmentPath(dir.path, first: 1)
            let fd = open(segment, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            #expect(fd >= 0)
            #expect(ftruncate(fd, 1 << 30) == 0)
            close(fd)
            let error = try #require(throws: (any Error).self) { try ExampleLog(directory: dir, options: options) }
            #expect("\(error)".contains("\(limit)"), "\(error)")
        }
    }
}
