import SwerveStatus

/// Splits a byte stream into gRPC length-prefixed messages.
///
/// Each message on the wire is a 1-byte compressed flag, a 4-byte big-endian length and the
/// body. The prefix is validated as soon as its five bytes arrive, so an oversized message is
/// rejected before its body is buffered. A plain value type: no NIO, testable byte by byte.
struct GRPCMessageDeframer {
    /// The largest body accepted; a larger declared length is RESOURCE_EXHAUSTED.
    let maxMessageSize: Int

    private var buffer: [UInt8] = []
    /// A whole message that arrived in one chunk on an empty buffer, taken out without buffering.
    private var ready: [UInt8]?
    private var readIndex = 0
    /// The declared length of the message whose prefix has been read, if any.
    private var pendingLength: Int?

    init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// The memory the buffer holds (for tests: it follows what arrived, not what was declared).
    var bufferedCapacity: Int { buffer.capacity }

    /// True when some bytes of an incomplete message are buffered: a stream ending now is truncated.
    var hasPartialMessage: Bool { pendingLength != nil || readIndex < buffer.count }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        // The usual unary request: prefix and body in one DATA frame. Copy the body out directly.
        if ready == nil, buffer.isEmpty, pendingLength == nil, bytes.count >= 5, bytes[0] == 0 {
            let length = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
            if length == bytes.count - 5 && length <= maxMessageSize {
                ready = Array(UnsafeRawBufferPointer(rebasing: bytes[5...]))
                return
            }
        }
        compactIfNeeded()
        buffer.append(contentsOf: bytes)
    }

    mutating func append<Bytes: Sequence<UInt8>>(contentsOf bytes: Bytes) {
        compactIfNeeded()
        buffer.append(contentsOf: bytes)
    }

    /// The next complete message, nil when more bytes are needed. Throws on a compressed flag
    /// (no compression is negotiated) or a declared length above `maxMessageSize`; after an
    /// error the deframer should be discarded.
    mutating func next() throws(GRPCStatus) -> [UInt8]? {
        if let message = ready {
            ready = nil
            return message
        }
        if pendingLength == nil {
            guard buffer.count - readIndex >= 5 else { return nil }
            let flag = buffer[readIndex]
            let length =
                Int(buffer[readIndex + 1]) << 24 | Int(buffer[readIndex + 2]) << 16
                | Int(buffer[readIndex + 3]) << 8 | Int(buffer[readIndex + 4])
            switch flag {
            case 0: break
            case 1:
                throw GRPCStatus(
                    .internal, "compressed message received but grpc-encoding is identity (no compression negotiated)")
            default:
                throw GRPCStatus(.internal, "invalid compressed flag \(flag) in message prefix")
            }
            if length > maxMessageSize {
                throw GRPCStatus(
                    .resourceExhausted,
                    "message of \(length) bytes exceeds the maximum receive size of \(maxMessageSize) bytes")
            }
            readIndex += 5
            pendingLength = length
            if buffer.count - readIndex < length {
                // The rest of the body arrives in later chunks: move what there is of it to the
                // front, so that the whole body can be handed over uncopied once it is complete.
                // No reservation of the declared length: five bytes would then hold up to
                // maxMessageSize (4 MiB by default) per stream, beyond what the request-body
                // budgets charge (bytes as they arrive). The buffer grows geometrically with what
                // does arrive, a few copies of a large body at most.
                buffer.removeSubrange(0..<readIndex)
                readIndex = 0
            }
        }
        let length = pendingLength!
        guard buffer.count - readIndex >= length else { return nil }
        let message: [UInt8]
        if readIndex == 0 && length == buffer.count {
            // The common case of one message in one chunk: hand over the storage, no copy.
            message = buffer
            buffer = []
        } else {
            message = Array(buffer[readIndex..<readIndex + length])
            readIndex += length
        }
        pendingLength = nil
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        }
        return message
    }

    private mutating func compactIfNeeded() {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }
}

/// Writes the 5-byte gRPC prefix (uncompressed) for a message of `length` bytes.
@inline(__always)
func grpcMessagePrefix(length: Int) -> (UInt8, UInt8, UInt8, UInt8, UInt8) {
    (0, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
     UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length))
}
