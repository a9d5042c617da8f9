import Foundation
import SwerveRepository

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where failing batches go instead of into training: `<directory>/<timestamp>-<id>/` with the
/// data (`data.csv`, plus copies of the source files when given), `report.json` (the validation
/// report: why it failed) and `source.json` (where it came from). Each entry is staged in a
/// hidden temporary folder and renamed into place, so an entry is complete or absent.
public struct Quarantine: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// One quarantined batch.
    public struct Entry: Sendable {
        public var folder: URL
        public var report: ValidationReport
        public var source: [String: String]
    }

    /// Quarantines `batch` with `report` and returns the entry's folder. `source` describes where
    /// the batch came from (file name, log offsets); `files` are copied in as they are.
    @discardableResult
    public func quarantine(batch: ValidationBatch, report: ValidationReport, source: [String: String] = [:], files: [URL] = []) throws -> URL {
        try DurableFiles.makeDirectory(directory.path)
        let name = RecordJSON.fileTimestamp() + "-" + RecordJSON.shortID()
        let staged = directory.path + "/.tmp-" + name
        guard mkdir(staged, 0o755) == 0 else { throw DurableFiles.ioError("cannot create", staged) }
        var done = false
        defer { if !done { try? FileManager.default.removeItem(atPath: staged) } }
        try DurableFiles.write(Array(batch.csv().utf8), to: staged + "/data.csv")
        try DurableFiles.write(RecordJSON.encoder().encode(report), to: staged + "/report.json")
        try DurableFiles.write(RecordJSON.encoder().encode(source), to: staged + "/source.json")
        for file in files {
            guard let data = DurableFiles.read(file.path) else { throw StorageError(.notFound, "cannot read \(file.path)") }
            try DurableFiles.write(data, to: staged + "/original-" + file.lastPathComponent)
        }
        try DurableFiles.fsyncDirectory(staged)
        let target = directory.path + "/" + name
        guard rename(staged, target) == 0 else { throw DurableFiles.ioError("cannot rename \(staged) to", target) }
        done = true
        try DurableFiles.fsyncDirectory(directory.path)
        return URL(fileURLWithPath: target, isDirectory: true)
    }

    /// Quarantined batches, oldest first.
    public func entries() -> [Entry] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { !$0.hasPrefix(".") }.sorted()
        return names.compactMap { name in
            let folder = directory.appendingPathComponent(name, isDirectory: true)
            guard let data = DurableFiles.read(folder.path + "/report.json"),
                  let report = try? RecordJSON.decoder().decode(ValidationReport.self, from: data) else { return nil }
            let source = DurableFiles.read(folder.path + "/source.json")
                .flatMap { try? JSONDecoder().decode([String: String].self, from: $0) } ?? [:]
            return Entry(folder: folder, report: report, source: source)
        }
    }
}
