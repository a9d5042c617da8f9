import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SwerveTransport

#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server answering `GET /metrics` with the Prometheus text format, on its own
/// port so scrapes never compete with gRPC traffic for a connection.
public final class MetricsEndpoint: Sendable {
    private let channel: any Channel
    public let port: Int

    public static func start(host: String, port: Int, registry: PrometheusCollectorRegistry, group: any EventLoopGroup,
                             logger: Logger = Logger(label: "swerve.metrics")) async throws -> MetricsEndpoint {
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
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry))
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
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let (status, type, body): (HTTPResponseStatus, String, [UInt8])
            if h.method == .GET && (h.uri == "/metrics" || h.uri.hasPrefix("/metrics?")) {
                var buffer: [UInt8] = []
                registry.emit(into: &buffer)
                (status, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", buffer)
            } else {
                (status, type, body) = (.notFound, "text/plain", Array("not found: try GET /metrics\n".utf8))
            }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: type)
            headers.add(name: "content-length", value: String(body.count))
            let keepAlive = h.isKeepAlive
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
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
