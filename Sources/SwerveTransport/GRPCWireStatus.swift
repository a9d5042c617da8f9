import SwerveStatus

extension GRPCStatusCode {
    /// Maps an HTTP status to a gRPC code when a response carries no `grpc-status`
    /// (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md).
    init(httpStatus: Int) {
        switch httpStatus {
        case 400: self = .internal
        case 401: self = .unauthenticated
        case 403: self = .permissionDenied
        case 404: self = .unimplemented
        case 429, 502, 503, 504: self = .unavailable
        default: self = .unknown
        }
    }
}

/// Percent-encoding of `grpc-message` as the gRPC HTTP/2 spec requires: bytes outside
/// 0x20...0x7E, and `%` itself, become `%XX` of the UTF-8 encoding.
enum GRPCMessageEncoding {
    /// Longest status message sent, in UTF-8 bytes before encoding. Peers cap header lists
    /// (grpcio at 8–16 KiB) and a message may quote client input, so longer ones are cut.
    static let maxMessageBytes = 1024

    static func encode(_ full: String) -> String {
        var message = full
        if full.utf8.count > maxMessageBytes {
            var cut = full.utf8.index(full.utf8.startIndex, offsetBy: maxMessageBytes)
            while cut > full.utf8.startIndex && !full.unicodeScalars.indices.contains(cut) { cut = full.utf8.index(before: cut) }
            message = String(full[..<cut]) + "… (truncated)"
        }
        let utf8 = message.utf8
        if utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E && $0 != UInt8(ascii: "%") }) { return message }
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count * 3)
        for byte in utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` sequences; malformed sequences are kept as they are (the spec asks
    /// receivers to be lenient), invalid UTF-8 is repaired.
    static func decode(_ encoded: String) -> String {
        let bytes = Array(encoded.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return encoded }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
                let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
