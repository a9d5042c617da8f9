internal import CNGHTTP2

// Small helpers shared by the server and client sessions. Everything here runs on one
// connection's event loop.

/// A header list laid out in one byte buffer, handed to nghttp2 as an `nghttp2_nv` array.
/// nghttp2 copies names and values on submit, so the storage only has to live for the call.
struct HeaderBlock {
    private var bytes: [UInt8] = []
    private var fields: [(nameStart: Int, nameLength: Int, valueLength: Int)] = []

    init(capacity: Int = 8) {
        bytes.reserveCapacity(capacity * 24)
        fields.reserveCapacity(capacity)
    }

    mutating func add(_ name: String, _ value: String) {
        let start = bytes.count
        bytes.append(contentsOf: name.utf8)
        let nameLength = bytes.count - start
        bytes.append(contentsOf: value.utf8)
        fields.append((start, nameLength, bytes.count - start - nameLength))
    }

    var count: Int { fields.count }

    func withNV<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        bytes.withUnsafeBufferPointer { storage in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(fields.count, 1)) { nva in
                let base = UnsafeMutablePointer(mutating: storage.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                for (i, field) in fields.enumerated() {
                    nva[i] = nghttp2_nv(
                        name: base + field.nameStart,
                        value: base + field.nameStart + field.nameLength,
                        namelen: field.nameLength,
                        valuelen: field.valueLength,
                        flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                }
                return body(UnsafePointer(nva.baseAddress!), fields.count)
            }
        }
    }
}

/// Outgoing gRPC messages of one stream, framed lazily: the 5-byte prefix is generated while
/// copying into nghttp2's frame buffer, so a message is never copied into an intermediate buffer.
struct OutboundMessageQueue {
    private var messages: [[UInt8]] = []
    private var head = 0
    /// Offset into the head message's framed form (prefix + body).
    private var offset = 0

    var isEmpty: Bool { head == messages.count }

    mutating func append(_ message: [UInt8]) {
        messages.append(message)
    }

    /// Copies as many framed bytes as fit into `destination`; returns the count.
    mutating func read(into destination: UnsafeMutableRawBufferPointer) -> Int {
        var written = 0
        while written < destination.count && head < messages.count {
            let message = messages[head]
            if offset < 5 {
                let prefix = grpcMessagePrefix(length: message.count)
                let n = min(5 - offset, destination.count - written)
                withUnsafeBytes(of: prefix) { p in
                    (destination.baseAddress! + written).copyMemory(from: p.baseAddress! + offset, byteCount: n)
                }
                written += n
                offset += n
            }
            if offset >= 5 {
                let n = min(5 + message.count - offset, destination.count - written)
                if n > 0 {
                    message.withUnsafeBytes { p in
                        (destination.baseAddress! + written).copyMemory(from: p.baseAddress! + (offset - 5), byteCount: n)
                    }
                    written += n
                    offset += n
                }
                if offset == 5 + message.count {
                    messages[head] = []
                    head += 1
                    offset = 0
                }
            }
        }
        if head == messages.count && head > 0 {
            messages.removeAll(keepingCapacity: true)
            head = 0
        }
        return written
    }
}

extension nghttp2_frame {
    var isEndStream: Bool { hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 }
    var frameType: UInt32 { UInt32(hd.type) }
}

@inline(__always)
func makeString(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> String {
    guard let pointer, length > 0 else { return "" }
    return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
}

/// Default ports for SETTINGS in the order nghttp2 expects.
func submitSettings(_ session: OpaquePointer, _ entries: [(nghttp2_settings_id, UInt32)]) -> Int32 {
    let iv = entries.map { nghttp2_settings_entry(settings_id: Int32($0.0.rawValue), value: $0.1) }
    return iv.withUnsafeBufferPointer { nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress, $0.count) }
}

func nghttp2ErrorString(_ code: Int) -> String {
    String(cString: nghttp2_strerror(Int32(truncatingIfNeeded: code)))
}
