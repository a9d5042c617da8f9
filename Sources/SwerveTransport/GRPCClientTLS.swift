// TLS for the client (`swerve models/predict/bench --tls [--ca-cert F]`): TLS 1.2+, ALPN h2,
// the server's certificate verified against the system's roots or the given CA file, and its
// name (or IP address) checked. `GRPCClientConnection.connect` waits for the handshake (at most
// `handshakeTimeout`), so a server that is not TLS, not trusted or not h2 fails the connect
// with a message that says which.

import NIOCore
import NIOSSL
import NIOTLS
import SwerveStatus

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// TLS settings of a client connection.
public struct GRPCClientTLS: Sendable, Equatable {
    /// PEM file of the CA certificate(s) to trust; nil: the system's roots.
    public var trustRootsPath: String?
    /// The most time the TLS handshake may take after the TCP connection is made.
    public var handshakeTimeout: Duration = .seconds(10)

    public init(trustRootsPath: String? = nil) {
        self.trustRootsPath = trustRootsPath
    }

    func makeContext() throws(GRPCStatus) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["h2"]
        if let path = trustRootsPath {
            let bytes: [UInt8]
            do {
                bytes = try GRPCServerTLS.readPEM(path, what: "CA certificate file (--ca-cert)")
            } catch {
                throw GRPCStatus(.invalidArgument, error.description)
            }
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMBytes(bytes)
            } catch {
                throw GRPCStatus(.invalidArgument, "CA certificate file (--ca-cert) \(path) holds no valid PEM certificate (\(error))")
            }
            guard !roots.isEmpty else {
                throw GRPCStatus(.invalidArgument, "CA certificate file (--ca-cert) \(path) holds no PEM certificate")
            }
            configuration.trustRoots = .certificates(roots)
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw GRPCStatus(.invalidArgument, "cannot set up TLS: \(error)")
        }
    }

    /// The name to send as SNI and check the certificate against; nil for an IP address (the
    /// certificate is then checked against the address connected to).
    static func serverHostname(_ host: String) -> String? {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 { return nil }
        return host
    }
}

/// After the client's TLS handler until the handshake is done: completes `done` when the
/// server negotiated h2, fails it (and closes) otherwise, then removes itself.
final class ClientTLSHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let done: EventLoopPromise<Void>
    private let authority: String
    private var finished = false

    init(done: EventLoopPromise<Void>, authority: String) {
        self.done = done
        self.authority = authority
    }

    private func fail(_ context: ChannelHandlerContext, _ message: String) {
        guard !finished else { return }
        finished = true
        done.fail(GRPCStatus(.unavailable, message))
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let negotiated)? = event as? TLSUserEvent, !finished {
            guard negotiated == "h2" else {
                fail(context, "\(authority) did not negotiate HTTP/2 over TLS (ALPN \(negotiated.map { "\"\($0)\"" } ?? "none")); it is not a gRPC server")
                return
            }
            finished = true
            done.succeed()
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, "TLS handshake with \(authority) failed: \(error)")
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context, "\(authority) closed the connection during the TLS handshake (is it serving TLS?)")
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            done.fail(GRPCStatus(.unavailable, "connection to \(authority) closed during the TLS handshake"))
        }
    }
}

@available(*, unavailable)
extension ClientTLSHandshakeHandler: Sendable {}
