@testable import SwerveTransport
import SwerveStatus

/// Builders for driving `GRPCServerStreamStateMachine` by hand: header blocks from string
/// pairs, framed messages, and the events that take raw bytes.
enum StreamEvents {
    /// The headers a well-behaved gRPC client sends for `path`, then `extra`.
    static func grpcHeaders(_ path: String = "/test.Test/Echo", _ extra: [(String, String)] = []) -> [(String, String)] {
        [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ] + extra
    }

    /// A header block as the connection handler gathers it from nghttp2's header callbacks.
    static func head(_ fields: [(String, String)], strings: inout HeaderStringCache) -> GRPCRequestHead {
        var head = GRPCRequestHead()
        for (name, value) in fields {
            let n = Array(name.utf8)
            let v = Array(value.utf8)
            n.withUnsafeBufferPointer { n in
                v.withUnsafeBufferPointer { v in
                    head.append(name: n.baseAddress, n.count, value: v.baseAddress, v.count, strings: &strings)
                }
            }
        }
        return head
    }

    static func head(_ fields: [(String, String)]) -> GRPCRequestHead {
        var strings = HeaderStringCache()
        return head(fields, strings: &strings)
    }

    /// The regular (non-pseudo) fields of `fields` as the head keeps them.
    static func headerFields(_ fields: [(String, String)]) -> HeaderFieldBytes {
        head(fields.filter { !$0.0.hasPrefix(":") }).headerFields
    }

    /// One gRPC message on the wire: flag 0, 4-byte big-endian length, body.
    static func frame(_ message: [UInt8], compressed: Bool = false, declaredLength: Int? = nil) -> [UInt8] {
        let n = UInt32(declaredLength ?? message.count)
        return [compressed ? 1 : 0, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + message
    }

    static func data(_ machine: inout GRPCServerStreamStateMachine, _ bytes: [UInt8]) -> GRPCServerStreamStateMachine.Action {
        bytes.withUnsafeBytes { machine.receiveData($0) }
    }

    /// One read by the response's data source through a window of `window` bytes.
    static func read(
        _ machine: inout GRPCServerStreamStateMachine, window: Int = 16_384
    ) -> (GRPCServerStreamStateMachine.ResponseRead, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: window)
        let result = buffer.withUnsafeMutableBytes { machine.readResponse(into: $0) }
        switch result {
        case .data(let n), .lastData(let n, _): return (result, Array(buffer[..<n]))
        case .deferred: return (result, [])
        }
    }
}
