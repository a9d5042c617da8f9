// TLS for the gRPC listener (swift-nio-ssl, BoringSSL).
//
// * The certificate chain and private key are PEM files read once, when the server starts
//   (bounded reads: regular files of at most `maxPEMFileBytes`); any problem refuses the start
//   with a message naming the file. There is no reload: a new certificate needs a restart.
// * TLS 1.2 at least (BoringSSL offers 1.3 first), ALPN `h2` only. gRPC needs HTTP/2; a client
//   that negotiates no protocol, or another one, is closed right after the handshake with a
//   log line, before any byte of it reaches HTTP/2.
// * The pipeline is SocketCloseHandler → NIOSSLServerHandler → TLSHandshakeGuard →
//   GRPCServerConnectionHandler. The guard logs failed handshakes and refuses clients without
//   h2, then removes itself, so the request path sees only the TLS handler in front of the
//   gRPC one. SocketCloseHandler lets the watchdog close the socket at once (see there).
// * Limits keep holding with TLS in front: the connection's watchdog starts on channelActive
//   (the TCP connection), and the handshake is done only with the client's HTTP/2 SETTINGS, so
//   `handshakeTimeout` covers the TLS handshake and the HTTP/2 preface together. The TLS
//   handler encrypts on flush and hands the ciphertext to the socket at once, so the channel's
//   writability and buffered bytes, which the backpressure and the outbound cap read, count
//   the encrypted bytes waiting for the socket; only output written before the handshake ends
//   (our SETTINGS) waits in the TLS handler.

import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// TLS for a `GRPCServer`: where its certificate chain and private key are.
public struct GRPCServerTLS: Sendable, Equatable {
    /// PEM file: the server's certificate first, then any intermediates.
    public var certificateChainPath: String
    /// PEM file: the certificate's private key, unencrypted.
    public var privateKeyPath: String

    /// The largest certificate or key file read (a chain is a few KiB).
    public static let maxPEMFileBytes = 1 << 20

    public init(certificateChainPath: String, privateKeyPath: String) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
    }

    /// Reads both files and builds the TLS context the server's connections share. Throws
    /// `GRPCServerTLSError`, whose message names the file and what is wrong with it.
    public func makeContext() throws(GRPCServerTLSError) -> NIOSSLContext {
        let chainBytes = try Self.readPEM(certificateChainPath, what: "TLS certificate file (--tls-cert)")
        let keyBytes = try Self.readPEM(privateKeyPath, what: "TLS private key file (--tls-key)")
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(chainBytes)
        } catch {
            throw GRPCServerTLSError(
                "TLS certificate file (--tls-cert) \(certificateChainPath) holds no valid PEM certificate (\(error))")
        }
        guard !chain.isEmpty else {
            throw GRPCServerTLSError(
                "TLS certificate file (--tls-cert) \(certificateChainPath) holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        }
        let key: NIOSSLPrivateKey
        do {
            // No passphrase callback: an encrypted key fails here rather than prompting.
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw GRPCServerTLSError(
                "TLS private key file (--tls-key) \(privateKeyPath) holds no valid unencrypted PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["h2"]
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw GRPCServerTLSError(
                "TLS private key file (--tls-key) \(privateKeyPath) does not go with the certificate in "
                    + "--tls-cert \(certificateChainPath), or the pair is unusable (\(error))")
        }
    }

    /// A warning when the server's certificate is outside its validity period now (clients
    /// will refuse it); nil otherwise.
    public func validityWarning(now: time_t = time(nil)) -> String? {
        guard let bytes = try? Self.readPEM(certificateChainPath, what: ""),
            let leaf = try? NIOSSLCertificate.fromPEMBytes(bytes).first
        else { return nil }
        if now > leaf.notValidAfter {
            return "the TLS certificate in \(certificateChainPath) expired (notAfter passed); clients will refuse it"
        }
        if now < leaf.notValidBefore {
            return "the TLS certificate in \(certificateChainPath) is not valid yet (notBefore in the future); clients will refuse it"
        }
        return nil
    }

    /// A regular file of at most `maxPEMFileBytes`, read through one descriptor (no window
    /// between the check and the read; a FIFO does not block the open).
    static func readPEM(_ path: String, what: String) throws(GRPCServerTLSError) -> [UInt8] {
        let limit = maxPEMFileBytes
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw GRPCServerTLSError("cannot open \(what) \(path): \(errnoText(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GRPCServerTLSError("cannot stat \(what) \(path): \(errnoText(errno))") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw GRPCServerTLSError("\(what) \(path) is not a regular file")
        }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var filled = 0
        while filled <= limit {
            let n = bytes.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                throw GRPCServerTLSError("cannot read \(what) \(path): \(errnoText(errno))")
            }
            if n == 0 { break }
            filled += n
        }
        guard filled <= limit else {
            throw GRPCServerTLSError("\(what) \(path) is larger than \(describeBytes(limit)); it is not a PEM certificate or key")
        }
        guard filled > 0 else { throw GRPCServerTLSError("\(what) \(path) is empty") }
        bytes.removeSubrange(filled...)
        return bytes
    }

    private static func errnoText(_ code: CInt) -> String { String(cString: strerror(code)) }
}

#if canImport(Glibc)
private let systemRead = Glibc.read
#elseif canImport(Darwin)
private let systemRead = Darwin.read
#endif

/// Why the server's TLS files cannot be used; the message names the file.
public struct GRPCServerTLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Logs TLS connections refused (failed handshakes, no ALPN h2): the first of a burst at once,
/// then at most one line per interval with a count, so a flood of bad clients cannot flood the
/// log. Shared by every connection of a server.
final class TLSRefusalLog: Sendable {
    private let logger: Logger
    private let handshakeFailures = Mutex(RateLimitedLog(interval: .seconds(10)))
    private let noH2 = Mutex(RateLimitedLog(interval: .seconds(10)))

    init(logger: Logger) { self.logger = logger }

    func handshakeFailed(peer: String, error: any Error) {
        guard let count = handshakeFailures.withLock({ $0.record(at: .now) }) else { return }
        logger.info(
            "TLS handshake failed with \(peer): \(error) (a plaintext or misconfigured client?); connection closed",
            metadata: count > 1 ? ["count": "\(count)"] : [:])
    }

    func refusedWithoutH2(peer: String, negotiated: String?) {
        guard let count = noH2.withLock({ $0.record(at: .now) }) else { return }
        let what = negotiated.map { "negotiated ALPN \"\($0)\"" } ?? "negotiated no ALPN protocol"
        logger.warning(
            "refused TLS connection from \(peer): it \(what), and gRPC needs HTTP/2 (ALPN h2); connection closed",
            metadata: count > 1 ? ["count": "\(count)"] : [:])
    }
}

/// Between the TLS handler and the gRPC connection handler until the handshake is done: logs a
/// failed handshake, and closes a connection whose client did not negotiate ALPN `h2` (nothing
/// it sends reaches HTTP/2). Removes itself once the client has h2.
final class TLSHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let log: TLSRefusalLog
    private let peer: String
    private var refused = false

    init(log: TLSRefusalLog, peer: String) {
        self.log = log
        self.peer = peer
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted(let negotiated)? = event as? TLSUserEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if negotiated == "h2" {
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } else {
            refused = true
            log.refusedWithoutH2(peer: peer, negotiated: negotiated)
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A client that closes before the handshake ends (a TCP probe, a port scan) is not
        // worth a line; one whose bytes are not TLS, or whose TLS we cannot agree on, is.
        if !refused, let error = error as? NIOSSLError, case .handshakeFailed(let cause) = error,
            cause != .sslError([.eofDuringHandshake])
        {
            log.handshakeFailed(peer: peer, error: error)
        }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension TLSHandshakeGuard: Sendable {}

/// Sent down a connection's pipeline to close it at once, beneath TLS (`SocketCloseHandler`).
struct GRPCForceCloseEvent: Sendable {}

/// First in a TLS connection's pipeline (next to the socket): closes the socket on
/// `GRPCForceCloseEvent`. A close from the connection handler passes through the TLS handler,
/// which sends close_notify and waits up to its shutdown timeout (5 s) for the peer's; a
/// connection the watchdog ends (handshake timeout, a peer that does not read or answer) is
/// to be gone at once, as it is without TLS.
final class SocketCloseHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = Any

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if event is GRPCForceCloseEvent {
            context.close(promise: promise)
        } else {
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }
}

@available(*, unavailable)
extension SocketCloseHandler: Sendable {}
