import SwerveInference

/// A parsed CSV file: the header and the records, each with the line it starts on.
///
/// The dialect is RFC 4180: comma-separated fields; records end with LF or CRLF; a field may be
/// quoted with `"`, and then holds commas, line breaks and doubled quotes (`""` for one `"`).
/// A header row is required. Blank lines are skipped (a file often ends with one).
public struct CSVTable: Sendable, Equatable {
    /// The header's field names.
    public var header: [String]
    /// The records after the header, each exactly `header.count` fields.
    public var records: [[String]]
    /// The 1-based physical line on which each record starts (the header is line 1 when the file
    /// has no leading blank lines).
    public var lines: [Int]

    /// Parses CSV text; `source` names the file in errors.
    ///
    /// Throws `TrainingError(.invalidData)` with the line and column of an unterminated quoted
    /// field, a quote inside an unquoted field, text after a closing quote, or a record whose
    /// field count differs from the header's.
    public init(parsing bytes: [UInt8], source: String = "data") throws {
        var parser = CSVParser(bytes: bytes, source: source)
        guard let (first, _) = try parser.nextRecord(header: nil) else {
            throw TrainingError(.invalidData, "\(source) is empty: a header row is required", line: 1)
        }
        header = first
        records = []
        lines = []
        while let (record, line) = try parser.nextRecord(header: first) {
            guard record.count == first.count else {
                let column = record.count > first.count ? nil : first[record.count]
                throw TrainingError(
                    .invalidData,
                    "\(source): expected \(first.count) fields as in the header, found \(record.count)"
                        + (column.map { " (missing '\($0)' and after)" } ?? ""),
                    line: line, column: column)
            }
            records.append(record)
            lines.append(line)
        }
    }

    /// The largest CSV file read whole (2 GiB): parsed, it takes several times that in memory.
    /// Larger data sets go through the example log or a directory of smaller files.
    public static let maxFileBytes = 2 << 30

    /// Reads and parses the CSV file at `path` (a regular file of at most `maxFileBytes`).
    public init(contentsOfFile path: String) throws {
        try self.init(parsing: try readAll(path, limit: Self.maxFileBytes, what: "CSV file"), source: path)
    }
}

/// A byte-level RFC 4180 tokenizer that knows the line it is on.
struct CSVParser {
    let bytes: [UInt8]
    let source: String
    var position = 0
    var line = 1

    init(bytes: [UInt8], source: String) {
        // A UTF-8 byte-order mark is not part of the first column's name.
        self.bytes = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes
        self.source = source
    }

    private static let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")

    /// The next record and the line it starts on, or nil at the end. `header` names columns in errors.
    mutating func nextRecord(header: [String]?) throws -> ([String], Int)? {
        // Skip blank lines.
        while position < bytes.count, bytes[position] == Self.lf || bytes[position] == Self.cr {
            if bytes[position] == Self.lf { line += 1 }
            position += 1
        }
        guard position < bytes.count else { return nil }
        let startLine = line
        var fields: [String] = []
        func columnName(_ index: Int) -> String {
            if let header, index < header.count { return header[index] }
            return header == nil ? "header field \(index + 1)" : "field \(index + 1)"
        }
        while true {
            var field: [UInt8] = []
            if position < bytes.count, bytes[position] == Self.quote {
                let quoteLine = line
                position += 1
                var closed = false
                while position < bytes.count {
                    let b = bytes[position]
                    if b == Self.quote {
                        if position + 1 < bytes.count, bytes[position + 1] == Self.quote {
                            field.append(Self.quote)
                            position += 2
                            continue
                        }
                        position += 1
                        closed = true
                        break
                    }
                    if b == Self.lf { line += 1 }
                    field.append(b)
                    position += 1
                }
                guard closed else {
                    throw TrainingError(.invalidData, "\(source): quoted field opened on line \(quoteLine) is never closed", line: quoteLine, column: columnName(fields.count))
                }
                if position < bytes.count, ![Self.comma, Self.lf, Self.cr].contains(bytes[position]) {
                    throw TrainingError(.invalidData, "\(source): unexpected character after a closing quote (a quote inside a quoted field must be doubled)", line: line, column: columnName(fields.count))
                }
            } else {
                while position < bytes.count {
                    let b = bytes[position]
                    if b == Self.comma || b == Self.lf || b == Self.cr { break }
                    if b == Self.quote {
                        throw TrainingError(.invalidData, "\(source): a quote inside an unquoted field (quote the whole field and double the quote)", line: line, column: columnName(fields.count))
                    }
                    field.append(b)
                    position += 1
                }
            }
            fields.append(String(decoding: field, as: UTF8.self))
            guard position < bytes.count else { return (fields, startLine) }
            let b = bytes[position]
            position += 1
            if b == Self.comma { continue }
            if b == Self.cr, position < bytes.count, bytes[position] == Self.lf { position += 1 }
            line += 1
            return (fields, startLine)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The whole file at `path`: a regular file (symlinks followed) of at most `limit` bytes, read
/// without blocking (`BoundedFile`); `what` names it in errors, which name the limit.
func readAll(_ path: String, limit: Int, what: String) throws -> [UInt8] {
    do {
        return try BoundedFile.read(path, limit: limit, what: what)
    } catch {
        throw TrainingError(.io, error.message)
    }
}

/// Writes `bytes` to `path`, replacing it.
func writeAll(_ bytes: [UInt8], to path: String) throws {
    guard let file = fopen(path, "wb") else {
        throw TrainingError(.io, "cannot create '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    guard written == bytes.count else { throw TrainingError(.io, "cannot write '\(path)'") }
}
