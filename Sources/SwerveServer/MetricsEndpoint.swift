import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SwerveServing
import SwerveTransport

#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server answering `GET /metrics` with the Prometheus text format, and the
/// KServe v2 HTTP health endpoints load balancers and Kubernetes probes use:
/// `GET /v2/health/live` (200 while the process answers) and `GET /v2/health/ready` (200 when
/// ready, 503 with the reason while loading, not ready or draining). On its own port so scrapes
/// and probes never compete with gRPC traffic for a connection.
public final class MetricsEndpoint: Sendable {
    private let channel: any Channel
    public let port: Int

    /// Whether the server is ready, and why not: the answer of `/v2/health/ready`.
    public typealias Readiness = @Sendable () -> (ready: Bool, reason: String)

    /// `readiness`: nil answers `/v2/health/ready` 200 always (a process with nothing to load).
    public static func start(host: String, port: Int, registry: PrometheusCollectorRegistry, group: any EventLoopGroup,
                             logger: Logger = Logger(label: "swerve.metrics"),
                             readiness: Readiness? = nil) async throws -> MetricsEndpoint {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Out of descriptors, accept(2) fails while a scrape waits: pause accepting instead of spinning.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptErrorBackoffHandler(logger: logger))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry, readiness: readiness))
                }
            }
        #if canImport(Glibc)
        // Close-on-exec and released on a crash, like the gRPC listener (SwerveTransport's ListeningSocket).
        let descriptor = try ListeningSocket.bind(host: host, port: port)
        let channel: any Channel
        do {
            channel = try await bootstrap.withBoundSocket(descriptor).get()
        } catch {
            CrashPortRelease.unregister(descriptor)
            Glibc.close(descriptor)
            throw error
        }
        #else
        let descriptor: CInt? = nil
        let channel = try await bootstrap.bind(host: host, port: port).get()
        #endif
        return MetricsEndpoint(channel: channel, descriptor: descriptor, port: channel.localAddress?.port ?? port)
    }

    private let descriptor: CInt?

    private init(channel: any Channel, descriptor: CInt?, port: Int) {
        self.channel = channel
        self.descriptor = descriptor
        self.port = port
    }

    public func close() async {
        #if canImport(Glibc)
        if let descriptor { CrashPortRelease.unregister(descriptor) }
        #endif
        try? await channel.close()
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let readiness: MetricsEndpoint.Readiness?
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, readiness: MetricsEndpoint.Readiness?) {
        self.registry = registry
        self.readiness = readiness
    }

    /// The answer to one request: status, content type, body.
    func answer(method: HTTPMethod, uri: String) -> (HTTPResponseStatus, String, [UInt8]) {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        let known = ["/metrics", "/v2/health/live", "/v2/health/ready"]
        guard known.contains(path) else {
            return (.notFound, "text/plain; charset=utf-8",
                    Array("not found: try GET /metrics, /v2/health/live or /v2/health/ready\n".utf8))
        }
        guard method == .GET || method == .HEAD else {
            return (.methodNotAllowed, "text/plain; charset=utf-8", Array("\(path) answers GET and HEAD only\n".utf8))
        }
        switch path {
        case "/metrics":
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            LatencyHistogram.emitAll(into: &buffer)
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", buffer)
        case "/v2/health/live":
            return (.ok, "text/plain; charset=utf-8", Array("live\n".utf8))
        default:
            let (ready, reason) = readiness?() ?? (true, "")
            return ready
                ? (.ok, "text/plain; charset=utf-8", Array("ready\n".utf8))
                : (.serviceUnavailable, "text/plain; charset=utf-8", Array("not ready: \(reason)\n".utf8))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let (status, type, body) = answer(method: h.method, uri: h.uri)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: type)
            headers.add(name: "content-length", value: String(body.count))
            headers.add(name: "cache-control", value: "no-store")
            let keepAlive = h.isKeepAlive
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
            if h.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                done.whenComplete { _ in loopBound.value.close(promise: nil) }
            }
        }
    }
}

@available(*, unavailable)
extension MetricsHTTPHandler: Sendable {}
