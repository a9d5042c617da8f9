/// The record framing of Swerve's append-only logs (the trainer's example log, the server's
/// prediction log): each record is
///
///     u32 length | u32 crc32(length, sequence, payload) | u64 sequence | payload   (little-endian)
///
/// with sequence numbers consecutive within a segment (a file of records). The length field's top
/// bit says more records of the same append follow, so an append of several records is whole or
/// absent after a crash: a scan cuts an append whose end is missing.
public enum FramedRecords {
    public static let headerSize = 16

    /// One record read back.
    public struct Record: Sendable, Equatable {
        public var sequence: UInt64
        public var payload: [UInt8]
        public init(sequence: UInt64, payload: [UInt8]) { self.sequence = sequence; self.payload = payload }
    }

    /// The length field's top bit: more records of the same append follow this one.
    public static let continuationFlag: UInt32 = 1 << 31

    public static func encode(sequence: UInt64, payload: [UInt8], continues: Bool = false) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(headerSize + payload.count)
        appendLE(&out, UInt64(UInt32(payload.count) | (continues ? continuationFlag : 0)), bytes: 4)
        appendLE(&out, 0, bytes: 4)  // CRC, filled below
        appendLE(&out, sequence, bytes: 8)
        out += payload
        let crc = checksum(out[...], payloadCount: payload.count)
        for i in 0..<4 { out[4 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        return out
    }

    /// CRC over the length, the sequence and the payload (everything but the CRC field).
    public static func checksum(_ record: ArraySlice<UInt8>, payloadCount: Int) -> UInt32 {
        let base = record.startIndex
        let c = RecordCRC32.checksum(record[base..<base + 4])
        return RecordCRC32.checksum(record[(base + 8)..<(base + headerSize + payloadCount)], initial: c)
    }

    /// What a scan of a segment's bytes found.
    public struct Scan: Sendable {
        public var records: [Record]
        /// Bytes from the start that hold whole, valid records (and whole appends).
        public var validBytes: Int
        /// Why the scan stopped before the end, when it did.
        public var stopReason: String?
    }

    /// Reads records from the start of a segment until the end or the first bad one. Records of
    /// an append that did not finish (its last valid record still says more follow) are not
    /// valid: the scan ends where that append began.
    public static func scan(_ bytes: [UInt8], firstSequence: UInt64, maxRecordBytes: Int) -> Scan {
        var records: [Record] = []
        var offset = 0
        var expected = firstSequence
        // Where the append being read began (byte offset and record count), while its records
        // say more follow.
        var unitStart: (offset: Int, records: Int)?
        func stop(_ reason: String?) -> Scan {
            guard let unit = unitStart else { return Scan(records: records, validBytes: offset, stopReason: reason) }
            let incomplete = records.count - unit.records
            records.removeLast(incomplete)
            let why = "an append cut short: \(incomplete) record(s) from byte \(unit.offset) without the rest of their append"
            return Scan(records: records, validBytes: unit.offset, stopReason: reason.map { why + " (" + $0 + ")" } ?? why)
        }
        while offset < bytes.count {
            guard bytes.count - offset >= headerSize else { return stop("torn header at byte \(offset)") }
            let field = UInt32(readLE(bytes, offset, 4))
            let continues = field & continuationFlag != 0
            let length = Int(field & ~continuationFlag)
            guard length <= maxRecordBytes else { return stop("implausible length \(length) at byte \(offset)") }
            guard bytes.count - offset - headerSize >= length else { return stop("torn record at byte \(offset)") }
            let stored = UInt32(readLE(bytes, offset + 4, 4))
            let record = bytes[offset..<(offset + headerSize + length)]
            guard checksum(record, payloadCount: length) == stored else { return stop("CRC mismatch at byte \(offset)") }
            let sequence = readLE(bytes, offset + 8, 8)
            guard sequence == expected else { return stop("sequence \(sequence) at byte \(offset), expected \(expected)") }
            if continues && unitStart == nil { unitStart = (offset, records.count) }
            records.append(Record(sequence: sequence, payload: Array(bytes[(offset + headerSize)..<(offset + headerSize + length)])))
            offset += headerSize + length
            expected += 1
            if !continues { unitStart = nil }
        }
        return stop(nil)
    }

    private static func appendLE(_ out: inout [UInt8], _ value: UInt64, bytes: Int) {
        for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }

    private static func readLE(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<count { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return v
    }
}

/// CRC-32 (IEEE 802.3, the zlib/gzip polynomial), guarding each log record.
public enum RecordCRC32 {
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: some Sequence<UInt8>, initial: UInt32 = 0) -> UInt32 {
        var c = ~initial
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return ~c
    }
}
