// Design
// ======
//
// The transport is the only module that sees HTTP/2. It moves bytes: a call is a `:path`,
// request metadata and one request message in; response messages and a status out. Models and
// protobuf live above it.
//
// Why this shape:
//
// * One nghttp2 session per connection, owned by one `ChannelInboundHandler` and touched only
//   on that connection's event loop. nghttp2 is not thread-safe and needs no locks this way;
//   its C callbacks are capture-free global `let`s that recover the handler from the session's
//   user data (`Unmanaged.passUnretained`), which keeps Swift 6 strict concurrency clean.
// * nghttp2 does the HTTP/2 work (HPACK, flow control, stream states, SETTINGS, GOAWAY); we
//   feed it with `mem_recv` in `channelRead` and drain `mem_send` into one buffer per loop tick
//   (`channelReadComplete`, or one scheduled flush after responses hop in from other threads),
//   so many responses completed together cost one write and one syscall.
// * gRPC framing is a plain value type (`GRPCMessageDeframer`) tested against every split of
//   its input; the 5-byte prefix is checked as soon as it arrives so oversized messages are
//   refused before their body is buffered. Outgoing messages are framed lazily while copying
//   into nghttp2's frame buffer (`OutboundMessageQueue`), never concatenated.
// * `GRPCServerCall` is the one object that crosses threads. Its small lifecycle state
//   (active / finished / cancelled and the cancel callbacks) sits behind a `Mutex`; everything
//   else hops to the event loop through a `NIOLoopBound` handler reference and is looked up by
//   stream id, so a call that outlives its stream (reset, connection closed) is harmless: the
//   lookup fails and the response is dropped.
// * Unary and server-streaming only: a call is dispatched when the request stream ends, with
//   exactly one message. The transport answers framing/header problems itself (see
//   `GRPCServerConnectionHandler.requestHeadersReceived` and `reject`); the handler answers
//   everything about methods and payloads. A non-gRPC content-type gets HTTP 415 (with
//   grpc-status UNKNOWN for gRPC clients that look), as the gRPC HTTP/2 spec recommends.
// * Graceful shutdown = close the listener, GOAWAY(last processed stream) on every connection,
//   let nghttp2 tell us when a connection is idle (`want_read == 0 && want_write == 0`), and
//   force-close whatever is left when the timeout passes.

import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Settings for `GRPCServer`.
public struct GRPCServerConfiguration: Sendable {
    /// The address to bind.
    public var host: String = "127.0.0.1"
    /// The port to bind; 0 picks a free port (read it back from `GRPCServer.port`).
    public var port: Int = 8001
    /// Event loop threads; each connection lives on one of them.
    public var eventLoopThreads: Int = System.coreCount
    /// Largest request message accepted; a larger one is answered RESOURCE_EXHAUSTED.
    public var maxReceiveMessageSize: Int = 4 * 1024 * 1024
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients.
    public var maxConcurrentStreams: UInt32 = 1024
    /// The connection-level receive window (raised from HTTP/2's default of 65,535).
    public var connectionWindowSize: Int32 = 16 * 1024 * 1024
    /// SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window.
    public var initialStreamWindowSize: Int32 = 4 * 1024 * 1024

    /// Creates the default configuration.
    public init() {}
}

/// Answers incoming calls.
public protocol GRPCCallHandler: Sendable {
    /// Called on the connection's event loop. Must not block: hop to other threads for work
    /// and answer through `call.send`/`call.finish`/`call.respond`.
    func handle(_ call: GRPCServerCall)
}

/// A gRPC (HTTP/2, cleartext) server over nghttp2 and SwiftNIO.
public final class GRPCServer: Sendable {
    private let configuration: GRPCServerConfiguration
    private let handler: any GRPCCallHandler
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let state = Mutex(State())

    private struct State {
        var serverChannel: (any Channel)?
        var port = 0
        var connections: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
        var groupShutDown = false
    }

    /// Creates a server; nothing is bound until `start()`.
    public init(configuration: GRPCServerConfiguration, handler: any GRPCCallHandler, logger: Logger) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
    }

    /// The bound port (valid after `start()` returns).
    public var port: Int { state.withLock { $0.port } }

    /// Open connections.
    public var activeConnectionCount: Int { state.withLock { $0.connections.count } }

    /// Binds and starts accepting connections.
    public func start() async throws {
        let configuration = self.configuration
        let handler = self.handler
        let logger = self.logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // One read per wake-up: the answers to what was read go out (channelReadComplete
            // flushes) before the next read, instead of waiting behind up to N more reads; with
            // many streams in flight this kept h2load throughput about 5% higher than 16.
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelInitializer { [self] channel in
                guard self.register(channel) else {
                    return channel.close()
                }
                var connectionLogger = logger
                connectionLogger[metadataKey: "grpc.peer"] = "\(channel.remoteAddress?.description ?? "?")"
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        GRPCServerConnectionHandler(
                            configuration: configuration, callHandler: handler, logger: connectionLogger))
                }
            }
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        let port = channel.localAddress?.port ?? configuration.port
        state.withLock {
            $0.serverChannel = channel
            $0.port = port
        }
        logger.info("gRPC server listening on \(configuration.host):\(port)")
    }

    private func register(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state in
            guard !state.shuttingDown else { return false }
            state.connections[id] = channel
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { [self] _ in
                _ = self.state.withLock { $0.connections.removeValue(forKey: id) }
            }
        }
        return accepted
    }

    /// Stops accepting, sends GOAWAY on every connection (last-stream-id = the highest stream
    /// seen), lets in-flight calls finish for up to `timeout`, then closes what is left and
    /// shuts the event loops down.
    public func shutdownGracefully(timeout: Duration = .seconds(30)) async {
        let (serverChannel, connections, alreadyShutDown) = state.withLock { state in
            let result = (state.serverChannel, Array(state.connections.values), state.groupShutDown)
            state.shuttingDown = true
            state.groupShutDown = true
            state.serverChannel = nil
            return result
        }
        guard !alreadyShutDown else { return }
        try? await serverChannel?.close()
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(GRPCServerGracefulShutdownEvent())
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for connection in connections { try? await connection.closeFuture.get() }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
            }
            await group.next()
            group.cancelAll()
            for connection in connections { connection.close(promise: nil) }
        }
        try? await group.shutdownGracefully()
        logger.info("gRPC server stopped")
    }
}
