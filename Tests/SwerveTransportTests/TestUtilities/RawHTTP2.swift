import NIOCore

/// Hand-built HTTP/2 client bytes, for what our own client never sends: a zero window, a header
/// block amplified through HPACK, frames the server must reject, all in one buffer.
enum RawHTTP2 {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
            + payload
    }

    static func settings(_ values: [(UInt16, UInt32)] = []) -> [UInt8] {
        var payload: [UInt8] = []
        for (id, value) in values {
            payload += [UInt8(id >> 8), UInt8(id & 0xFF)]
            payload += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        }
        return frame(0x4, stream: 0, payload)
    }

    static let settingsAck = frame(0x4, flags: 0x1, stream: 0)

    /// An HPACK integer with an `prefixBits`-bit prefix, the first byte's high bits `flags`.
    static func integer(_ value: Int, prefixBits: Int, flags: UInt8) -> [UInt8] {
        let max = (1 << prefixBits) - 1
        if value < max { return [flags | UInt8(value)] }
        var out = [flags | UInt8(max)]
        var rest = value - max
        while rest >= 128 {
            out.append(UInt8(rest % 128 + 128))
            rest /= 128
        }
        out.append(UInt8(rest))
        return out
    }

    static func string(_ s: [UInt8]) -> [UInt8] { integer(s.count, prefixBits: 7, flags: 0) + s }

    /// A literal header field without indexing, new name.
    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00] + string(Array(name.utf8)) + string(Array(value.utf8))
    }

    /// A literal header field with incremental indexing (it enters the dynamic table at index 62).
    static func indexedLiteral(_ name: String, _ value: [UInt8]) -> [UInt8] {
        [0x40] + string(Array(name.utf8)) + string(value)
    }

    /// The header block of a gRPC request for `path`.
    static func requestBlock(_ path: String) -> [UInt8] {
        literal(":method", "POST") + literal(":scheme", "http") + literal(":path", path)
            + literal(":authority", "raw") + literal("content-type", "application/grpc") + literal("te", "trailers")
    }

    static func headers(stream: UInt32, _ block: [UInt8], endStream: Bool = false) -> [UInt8] {
        frame(0x1, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, block)
    }

    /// A gRPC length-prefixed message.
    static func message(_ body: [UInt8]) -> [UInt8] {
        let n = body.count
        return [0, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + body
    }

    /// DATA frames of at most 16,384 bytes (the default SETTINGS_MAX_FRAME_SIZE) carrying `payload`.
    static func data(stream: UInt32, _ payload: [UInt8], endStream: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        repeat {
            let end = min(start + 16_384, payload.count)
            let last = end == payload.count
            out += frame(0x0, flags: endStream && last ? 0x1 : 0, stream: stream, Array(payload[start..<end]))
            start = end
        } while start < payload.count
        return out
    }

    /// A complete unary request on `stream`.
    static func request(stream: UInt32, _ path: String, _ body: [UInt8]) -> [UInt8] {
        headers(stream: stream, requestBlock(path)) + data(stream: stream, message(body), endStream: true)
    }

    static func buffer(_ bytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }
}
