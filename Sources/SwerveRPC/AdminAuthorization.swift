import Logging
import Metrics
import SwerveInference
import SwerveStatus
import SwerveTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bearer token that guards a service's control plane: the calls that change state
/// (RepositoryModelLoad/Unload; the trainer's job, ingest and registry calls). Inference,
/// metadata, statistics, the index and health stay open.
///
/// A control call must carry exactly one `authorization: Bearer <token>` header. No such header,
/// another scheme, or more than one header → UNAUTHENTICATED; a token that differs →
/// PERMISSION_DENIED. The comparison takes the same time wherever the first difference is
/// (`constantTimeEquals`), so an attacker cannot find the token byte by byte from timings.
public struct AdminAuthorization: Sendable {
    /// The most bytes of a token file read: 4 KiB (a token is a few dozen bytes).
    public static let maxTokenFileBytes = 4096
    /// Byte positions `constantTimeEquals` always compares: a token is never longer.
    static let paddedLength = maxTokenFileBytes
    /// Tokens shorter than this are accepted with a warning: they can be guessed.
    public static let recommendedMinimumTokenBytes = 16
    /// The request header that carries the token (lowercase, as HTTP/2 sends it).
    public static let headerName = "authorization"

    private let token: [UInt8]

    /// A guard for `token`, which must be one or more visible ASCII characters (no spaces: it
    /// travels as `Bearer <token>` in a header).
    public init(token: String) throws(ControlPlaneError) {
        if let problem = Self.tokenProblem(Array(token.utf8)) { throw ControlPlaneError("the admin token \(problem)") }
        self.token = Array(token.utf8)
    }

    /// Why these bytes cannot be a token, or nil.
    static func tokenProblem(_ bytes: [UInt8]) -> String? {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) { return "is empty" }
        if let bad = bytes.first(where: { !(0x21...0x7E).contains($0) }) {
            return "contains byte 0x\(String(bad, radix: 16)) (\(bad == 0x20 || bad == 0x09 ? "whitespace" : "not visible ASCII")); a token is one or more visible ASCII characters without spaces, e.g. the output of `openssl rand -hex 32`"
        }
        return nil
    }

    /// The token held in `path`: read through `BoundedFile` (a regular file of at most
    /// `maxTokenFileBytes`), trailing newlines (LF or CRLF) removed. Throws when the file cannot be
    /// read or the token is empty or not visible ASCII. `warnings` says when the file can be read
    /// by other users or the token is short.
    public static func readTokenFile(_ path: String) throws(ControlPlaneError) -> (token: String, warnings: [String]) {
        var bytes: [UInt8]
        do {
            bytes = try BoundedFile.read(path, limit: maxTokenFileBytes, what: "admin token file")
        } catch {
            throw ControlPlaneError("cannot read the admin token: \(error.message)")
        }
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        if let problem = tokenProblem(bytes) { throw ControlPlaneError("the admin token in \(path) \(problem)") }
        var warnings: [String] = []
        var st = stat()
        if stat(path, &st) == 0, st.st_mode & S_IROTH != 0 {
            warnings.append("admin token file \(path) is readable by every user (mode \(String(st.st_mode & 0o777, radix: 8))); make it readable by its owner only: chmod 600 \(path)")
        }
        if bytes.count < recommendedMinimumTokenBytes {
            warnings.append("the admin token in \(path) is only \(bytes.count) bytes; use at least \(recommendedMinimumTokenBytes) random ones (e.g. openssl rand -hex 32)")
        }
        return (String(decoding: bytes, as: UTF8.self), warnings)
    }

    /// Why a control call was refused.
    public enum Refusal: String, Sendable, Equatable, CaseIterable {
        /// No `authorization` header (UNAUTHENTICATED).
        case missing
        /// An `authorization` header that is not one `Bearer <token>` (UNAUTHENTICATED).
        case malformed
        /// A bearer token that is not the server's (PERMISSION_DENIED).
        case wrong

        /// The status the call ends with; it never contains what was sent.
        public var status: GRPCStatus {
            switch self {
            case .missing:
                GRPCStatus(.unauthenticated, "this call changes the server's state and needs the admin token: send the header 'authorization: Bearer <token>' (the token is in the file given to --admin-token-file)")
            case .malformed:
                GRPCStatus(.unauthenticated, "the 'authorization' header must be exactly one 'Bearer <token>'")
            case .wrong:
                GRPCStatus(.permissionDenied, "the bearer token is not this server's admin token")
            }
        }
    }

    /// Whether request headers `metadata` carry this token; nil when they do.
    public func refusal(metadata: [(name: String, value: String)]) -> Refusal? {
        var value: String?
        for field in metadata where field.name == Self.headerName {
            if value != nil { return .malformed }
            value = field.value
        }
        guard let value else { return .missing }
        return refusal(authorization: value)
    }

    /// Whether one `authorization` header value is `Bearer <this token>`; nil when it is.
    /// The scheme is matched without regard to case and may be followed by any number of spaces
    /// (RFC 6750: `"Bearer" 1*SP b64token`); spaces around the whole value are ignored.
    public func refusal(authorization value: String) -> Refusal? {
        var bytes = Array(value.utf8)[...]
        while let f = bytes.first, f == 0x20 || f == 0x09 { bytes.removeFirst() }
        while let l = bytes.last, l == 0x20 || l == 0x09 { bytes.removeLast() }
        let scheme = Array("bearer".utf8)
        guard bytes.count > scheme.count,
              zip(bytes.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 }),
              bytes[bytes.startIndex + scheme.count] == 0x20
        else { return .malformed }
        var credentials = bytes.dropFirst(scheme.count)
        while credentials.first == 0x20 { credentials.removeFirst() }
        guard !credentials.isEmpty else { return .malformed }
        return Self.constantTimeEquals(credentials, token) ? nil : .wrong
    }

    /// Whether `a` and `b` hold the same bytes, in a time that tells nothing about either but
    /// the length of one longer than `paddedLength`: at least `paddedLength` byte positions (the
    /// most a token file may hold) are always compared, the differences OR-ed together, with no
    /// early exit at the first difference nor at a length mismatch. So neither a token's content
    /// nor its length shows in the time a guess takes.
    public static func constantTimeEquals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        let x = Array(a), y = Array(b)
        let n = max(x.count, y.count, paddedLength)
        var difference = UInt(bitPattern: x.count ^ y.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in
                for i in 0..<n {
                    let u = i < xp.count ? xp[i] : 0
                    let v = i < yp.count ? yp[i] : 0
                    difference |= UInt(u ^ v)
                }
            }
        }
        return difference == 0
    }
}

/// Why a service refused to start over its control plane (an unreadable or empty token file,
/// a non-loopback address without a token). `description` says what to do.
public struct ControlPlaneError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The control-plane flags a service starts with (`--admin-token-file`, `--insecure-control-plane`).
public struct ControlPlaneOptions: Sendable {
    /// The file holding the admin token; nil = no token (allowed on loopback only, unless `insecure`).
    public var adminTokenFile: String?
    /// Listen on a non-loopback address without a token: anyone who reaches the port may change state.
    public var insecure = false
    public init(adminTokenFile: String? = nil, insecure: Bool = false) {
        self.adminTokenFile = adminTokenFile
        self.insecure = insecure
    }

    /// The guard a service listening on `host` starts with, checked before it binds anything:
    /// the token from `adminTokenFile` (warnings logged); or, without one, none when `host` is
    /// loopback or `insecure` is set (then a warning is logged). Throws when the token file
    /// cannot be used, or without a token on a non-loopback `host` without `insecure`.
    ///
    /// - Parameters:
    ///   - port: for the error message.
    ///   - calls: what the control calls do, for the error message ("load and unload models").
    public func makeGuard(host: String, port: Int, calls: String, service: String, logger: Logger) throws(ControlPlaneError) -> ControlPlaneGuard {
        if let adminTokenFile {
            let (token, warnings) = try AdminAuthorization.readTokenFile(adminTokenFile)
            for w in warnings { logger.warning("\(w)") }
            logger.info("control calls need the admin token", metadata: ["token_file": "\(adminTokenFile)"])
            return ControlPlaneGuard(authorization: try AdminAuthorization(token: token), logger: logger, service: service)
        }
        if !Self.isLoopback(host) {
            guard insecure else {
                throw ControlPlaneError("""
                    refusing to listen on \(host) without --admin-token-file: anyone who can reach port \(port) \
                    could \(calls). Give --admin-token-file FILE (FILE holds a secret token; clients send \
                    'authorization: Bearer <token>' with those calls), or listen on a loopback address \
                    (--host 127.0.0.1), or, if something else already guards the port (a firewall, a network \
                    policy, a proxy that checks callers), pass --insecure-control-plane.
                    """)
            }
            logger.warning("control calls are open to anyone who can reach this address (--insecure-control-plane without --admin-token-file)",
                           metadata: ["host": "\(host)", "port": "\(port)"])
        }
        return ControlPlaneGuard(authorization: nil, logger: logger, service: service)
    }

    /// Whether `host` names a loopback address only: `localhost`, 127.0.0.0/8, ::1 (also written
    /// `[::1]`), or an IPv4-mapped 127.x address. Anything else, including 0.0.0.0, `::` and other
    /// host names, is not.
    public static func isLoopback(_ host: String) -> Bool {
        var h = host.lowercased()
        if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        // Not "localhost." (a fully qualified name /etc/hosts does not list: it goes to DNS).
        if h == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, h, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, h, &v6) == 1 {
            let b = withUnsafeBytes(of: &v6) { Array($0) }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }   // ::1
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return b[12] == 127 }   // ::ffff:127.x
        }
        return false
    }
}

/// What a service runs every state-changing call through before it decodes the request:
/// with an `AdminAuthorization`, a call without the right token ends at once with
/// UNAUTHENTICATED or PERMISSION_DENIED, is counted in `swerve_admin_auth_failures_total{reason}`
/// and logged (a warning at most every 10 s, with how many were refused meanwhile; never what was
/// sent). Without one, every call is admitted.
public final class ControlPlaneGuard: Sendable {
    public let authorization: AdminAuthorization?
    private let logger: Logger
    private let service: String
    private let counters: [AdminAuthorization.Refusal: Counter]
    /// (last warning time in ns of uptime, refusals not yet reported)
    private let logState = Mutex<(last: UInt64?, unreported: Int)>((nil, 0))
    /// The least time between two refusal warnings.
    static let logInterval: UInt64 = 10_000_000_000

    public init(authorization: AdminAuthorization?, logger: Logger, service: String) {
        self.authorization = authorization
        self.logger = logger
        self.service = service
        var c: [AdminAuthorization.Refusal: Counter] = [:]
        if authorization != nil {
            for r in AdminAuthorization.Refusal.allCases {
                c[r] = Counter(label: "swerve_admin_auth_failures_total", dimensions: [("reason", r.rawValue)])
            }
        }
        counters = c
    }

    /// A guard that admits every call (tests, loopback without a token).
    public static func open(logger: Logger = Logger(label: "swerve.control-plane")) -> ControlPlaneGuard {
        ControlPlaneGuard(authorization: nil, logger: logger, service: "")
    }

    /// True when `call` may go on; otherwise the call has been finished with the refusal's status.
    public func admit(_ call: GRPCServerCall) -> Bool {
        guard let authorization else { return true }
        guard let refusal = authorization.refusal(metadata: call.metadata) else { return true }
        counters[refusal]?.increment()
        call.finish(refusal.status)
        let now = DispatchTimeNow.uptimeNanoseconds()
        let report: Int? = logState.withLock { s in
            s.unreported += 1
            if let last = s.last, now &- last < Self.logInterval { return nil }
            s.last = now
            defer { s.unreported = 0 }
            return s.unreported
        }
        if let report {
            logger.warning("refused a control call without the right admin token", metadata: [
                "method": "\(call.method)", "reason": "\(refusal.rawValue)", "service": "\(service)",
                "refused_since_last_report": "\(report)"])
        }
        return false
    }
}

/// The monotonic clock, without Dispatch in this file's imports.
enum DispatchTimeNow {
    static func uptimeNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
