// Design
// ======
//
// The transport is the only module that sees HTTP/2. It moves bytes: a call is a `:path`,
// request metadata and one request message in; response messages and a status out. Models and
// protobuf live above it.
//
// Why this shape (swift-nio-http2's, over nghttp2):
//
// * One nghttp2 session per connection, touched only on that connection's event loop, so
//   nghttp2 (not thread-safe) needs no locks. `NGHTTP2Session` owns it for both ends: it feeds
//   `mem_recv` from `channelRead`, drains `mem_send` into one buffer per loop tick
//   (`channelReadComplete`, or one coalesced scheduled flush after answers hop in from other
//   threads), so many responses completed together cost one write and one syscall; it answers
//   a protocol error with GOAWAY and closes the channel once nghttp2 wants neither to read nor
//   to write, after the last write. The server's and the client's channel handlers own the
//   session in a `let` and keep only what differs: their callbacks and what a stream is. The
//   C callbacks are capture-free global `let`s that recover the handler from the session's
//   user data (`Unmanaged.passUnretained`, no retain per callback), which keeps Swift 6 strict
//   concurrency clean.
// * nghttp2 does the HTTP/2 work (HPACK, flow control, stream states, SETTINGS, GOAWAY). The
//   gRPC rules of a server stream live in `GRPCServerStreamStateMachine`, a plain struct with
//   no NIO and no nghttp2: it takes the stream's events (request headers, body bytes, end of
//   stream, the call's answers, the deadline, the stream closing) and returns an action enum
//   (reject trailers-only, dispatch, submit headers, resume data, trailers-only answer, reset,
//   cancel the call) that `GRPCServerConnectionHandler.perform` carries out. The rules are
//   tested event by event without a socket; the handler only executes.
// * gRPC framing is a plain value type (`GRPCMessageDeframer`) tested against every split of
//   its input; the 5-byte prefix is checked as soon as it arrives so oversized messages are
//   refused before their body is buffered. Outgoing messages are framed lazily while copying
//   into nghttp2's frame buffer (`OutboundMessageQueue`), never concatenated. Request headers
//   are compared as bytes in place and kept as bytes (`HeaderFieldBytes`); the response
//   headers and OK trailers are static NO_COPY lists (`StaticHeaders`).
// * `GRPCServerCall` is the one object that crosses threads. Its small lifecycle state
//   (active / finished / cancelled and the cancel callbacks) sits behind a `Mutex`; everything
//   else hops to the event loop through a `NIOLoopBound` handler reference and is looked up by
//   stream id, so a call that outlives its stream (reset, connection closed) is harmless: the
//   lookup fails and the response is dropped.
// * Unary and server-streaming only: a call is dispatched when the request stream ends, with
//   exactly one message. The transport answers framing/header problems itself (the state
//   machine's `reject` actions); the handler answers everything about methods and payloads. A
//   non-gRPC content-type gets HTTP 415 (with grpc-status UNKNOWN for gRPC clients that look),
//   as the gRPC HTTP/2 spec recommends. A passed deadline is always answered with
//   `GRPCStatus.deadlineExceeded`.
// * The accept path: the listening socket is made by `ListeningSocket` (close-on-exec, shut
//   down on a crash so a restart can bind at once); `ConnectionLimitHandler`, in front of NIO's
//   AcceptHandler, closes connections above `maxConnections` at once, and
//   `AcceptErrorBackoffHandler` pauses accepting when accept(2) runs out of descriptors
//   instead of spinning.
// * Graceful shutdown = close the listener, GOAWAY(last processed stream) on every connection,
//   let nghttp2 tell us when a connection is idle (`want_read == 0 && want_write == 0`), and
//   force-close whatever is left when the timeout passes.

import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

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
    /// SETTINGS_MAX_HEADER_LIST_SIZE advertised to clients, and enforced: a request whose header
    /// list (names + values + 32 bytes per field, RFC 9113 §6.5.2) is larger is answered
    /// RESOURCE_EXHAUSTED without its fields being kept. 16 KiB: grpc-core's hard limit for
    /// metadata (grpc-java allows 8 KiB), ample for gRPC's own headers and tokens.
    public var maxHeaderListBytes: Int = 16 << 10
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients.
    public var maxConcurrentStreams: UInt32 = 1024
    /// The connection-level receive window (raised from HTTP/2's default of 65,535).
    public var connectionWindowSize: Int32 = 16 * 1024 * 1024
    /// SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window.
    public var initialStreamWindowSize: Int32 = 4 * 1024 * 1024

    // The accept path (ListenerLimits.swift) ------------------------------------------------
    /// Most client connections open at once; one more is accepted and closed at once (logged,
    /// rate-limited, and reported to `listenerObserver`). nil: `ListenerLimits.defaultMaxConnections()`,
    /// min(4096, RLIMIT_NOFILE − 128).
    public var maxConnections: Int? = nil
    /// Accept queue length (listen(2) backlog).
    public var listenBacklog: Int32 = 256
    /// Told about opened, closed and refused connections and accept failures (for metrics).
    public var listenerObserver: (any GRPCListenerObserver)? = nil
    // Limits of one connection (what one slow or hostile client may hold). See
    // GRPCServerConnectionHandler for how each is enforced.

    /// The most response bytes one connection may have waiting to go out: messages queued in
    /// its streams (waiting for the client's flow-control window) plus bytes handed to the
    /// socket and not yet written. Past it the connection gets GOAWAY(ENHANCE_YOUR_CALM) and
    /// is closed.
    public var maxConnectionOutboundBytes: Int = 64 << 20
    /// The most request-body bytes one connection may hold (messages arriving, and messages
    /// dispatched until their stream closes). A stream that would go past it is answered
    /// RESOURCE_EXHAUSTED and its bytes released.
    public var maxConnectionRequestBytes: Int = 64 << 20
    /// The same budget for all connections of the server together.
    public var maxServerRequestBytes: Int = 1 << 30
    /// A new connection must send the HTTP/2 preface and its SETTINGS within this; nil: no limit.
    public var handshakeTimeout: Duration? = .seconds(10)
    /// A connection with no open stream for this long gets GOAWAY and is closed (gRPC's
    /// max_connection_idle); nil: never.
    public var idleTimeout: Duration? = .seconds(300)
    /// A stream whose request is incomplete and which receives no request bytes for this long
    /// is answered DEADLINE_EXCEEDED and its bytes released; nil: never.
    public var requestBodyTimeout: Duration? = .seconds(30)
    /// The most time a request body may take from its HEADERS to its END_STREAM, however it
    /// trickles in (time the server itself was not reading is not counted); past it the stream
    /// is answered DEADLINE_EXCEEDED and its bytes released; nil: no limit. 120 s lets the
    /// default 4 MiB message arrive at 35 KB/s; raise it with --max-receive-message-size.
    public var maxRequestBodyDuration: Duration? = .seconds(120)
    /// A stream whose queued response the client's flow-control window lets nothing of through
    /// for this long (a client that never grants window, or never reads) is reset with
    /// RST_STREAM(ENHANCE_YOUR_CALM) and its queued bytes dropped; nil: never.
    public var responseWindowTimeout: Duration? = .seconds(30)
    /// After this long with nothing read from a connection the server sends a PING (gRPC's
    /// keepalive_time, 2 h by default as in gRPC servers); nil: no keepalive.
    public var keepaliveInterval: Duration? = .seconds(7200)
    /// A keepalive PING not acknowledged within this closes the connection (keepalive_timeout).
    public var keepaliveTimeout: Duration = .seconds(20)
    /// A connection older than this (± 10%, drawn per connection, so connections opened
    /// together do not all leave together) gets a graceful GOAWAY, so long-lived client
    /// connections move to replicas added later (gRPC's max_connection_age, proposal A9);
    /// nil: never.
    public var maxConnectionAge: Duration? = nil
    /// How long the calls in flight on a connection that reached its age may still run; then
    /// they are cancelled and the connection closed (max_connection_age_grace); nil: as long
    /// as they take.
    public var maxConnectionAgeGrace: Duration? = nil
    /// Told when a connection leaves because of its age (for metrics).
    public var connectionAgeObserver: (@Sendable () -> Void)? = nil

    // TLS (GRPCServerTLS.swift) ------------------------------------------------------------
    /// Serve gRPC over TLS (ALPN h2, TLS 1.2+) with this certificate and key, read once at
    /// `start()`; nil: cleartext HTTP/2.
    public var tls: GRPCServerTLS? = nil

    /// Creates the default configuration.
    public init() {}

    /// Why this configuration cannot work as meant, naming each setting by its `swerve serve`
    /// flag; nil when it can. A request message counts against the request-body budgets with
    /// its 5-byte gRPC prefix, so a `maxReceiveMessageSize` the budgets cannot hold would have
    /// every request near that size refused RESOURCE_EXHAUSTED with a message about budgets.
    public var inconsistency: String? {
        let largest = maxReceiveMessageSize + 5
        if let age = maxConnectionAge, age <= .zero {
            return "--max-connection-age must be positive (\(age)); leave it out for no age limit"
        }
        if let grace = maxConnectionAgeGrace, grace < .zero {
            return "--max-connection-age-grace must not be negative (\(grace))"
        }
        for (flag, budget) in [("--max-connection-request-bytes", maxConnectionRequestBytes),
                               ("--max-server-request-bytes", maxServerRequestBytes)] where largest > budget {
            return "--max-receive-message-size (\(maxReceiveMessageSize)) plus the 5-byte gRPC message prefix is larger "
                + "than \(flag) (\(budget)): the largest requests allowed could never be held; raise \(flag) or lower "
                + "--max-receive-message-size"
        }
        return nil
    }
}

/// A `GRPCServerConfiguration` that cannot work (`inconsistency`), refused by `GRPCServer.start`.
public struct GRPCServerConfigurationError: Error, CustomStringConvertible {
    public let description: String
}

/// Answers incoming calls.
public protocol GRPCCallHandler: Sendable {
    /// Called on the connection's event loop. Must not block: hop to other threads for work
    /// and answer through `call.send`/`call.finish`/`call.respond`.
    func handle(_ call: GRPCServerCall)

    /// Called on the event loop around the dispatch of the calls one read completed (`handle`
    /// for each, inside `body`): a handler may defer the burst's work and do it together when
    /// `body` returns or calls `flush` (the inference service batches cheap requests so; the
    /// connection flushes before the answers it has not seen could pass its outbound limit).
    /// The default defers nothing.
    func dispatchBurst(_ body: (_ flush: () -> Void) -> Void)
}

extension GRPCCallHandler {
    public func dispatchBurst(_ body: (_ flush: () -> Void) -> Void) { body {} }
}

/// A gRPC server (HTTP/2, cleartext or TLS) over nghttp2 and SwiftNIO.
public final class GRPCServer: Sendable {
    private let configuration: GRPCServerConfiguration
    private let handler: any GRPCCallHandler
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let state = Mutex(State())
    /// The request-body memory budget every connection of this server shares.
    let requestBudget: GRPCRequestMemoryBudget

    private let connectionCounter = ConnectionCounter()

    private struct State {
        var serverChannel: (any Channel)?
        var listeningDescriptor: CInt?
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
        self.requestBudget = GRPCRequestMemoryBudget(limit: configuration.maxServerRequestBytes)
    }

    /// The bound port (valid after `start()` returns).
    public var port: Int { state.withLock { $0.port } }

    /// Open connections.
    public var activeConnectionCount: Int { state.withLock { $0.connections.count } }

    /// The connection limit in force (the configured one, or the default).
    public var maxConnections: Int { configuration.maxConnections ?? ListenerLimits.defaultMaxConnections() }

    /// Binds and starts accepting connections.
    public func start() async throws {
        let configuration = self.configuration
        if let problem = configuration.inconsistency { throw GRPCServerConfigurationError(description: problem) }
        let handler = self.handler
        let logger = self.logger
        // TLS files are read (and refused, naming the file) before anything is bound.
        let sslContext: NIOSSLContext?
        if let tls = configuration.tls {
            sslContext = try tls.makeContext()
            if let warning = tls.validityWarning() { logger.warning("\(warning)") }
        } else {
            sslContext = nil
        }
        let tlsRefusals = TLSRefusalLog(logger: logger)
        let maxConnections = self.maxConnections
        let counter = self.connectionCounter
        if let limit = ListenerLimits.descriptorLimit(), maxConnections > limit - ListenerLimits.reservedDescriptors {
            logger.warning("--max-connections \(maxConnections) leaves fewer than \(ListenerLimits.reservedDescriptors) of the \(limit) descriptors (RLIMIT_NOFILE) for everything else; accept may fail with EMFILE before the limit is reached (it backs off)")
        }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.listenBacklog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // In front of NIO's AcceptHandler: count connections, refuse those above the limit
            // before they are registered, and back off when accept(2) runs out of descriptors.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptErrorBackoffHandler(
                        observer: configuration.listenerObserver, logger: logger,
                        hint: ": raise it (ulimit -n) or lower --max-connections, now \(maxConnections)"))
                    try channel.pipeline.syncOperations.addHandler(ConnectionLimitHandler(
                        maxConnections: maxConnections, counter: counter,
                        observer: configuration.listenerObserver, logger: logger))
                }
            }
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
                    if let sslContext {
                        // Before the gRPC handler: it then reads and writes plaintext, and its
                        // watchdog's handshake timer (from channelActive) covers TLS too.
                        try channel.pipeline.syncOperations.addHandler(SocketCloseHandler())
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                        try channel.pipeline.syncOperations.addHandler(
                            TLSHandshakeGuard(log: tlsRefusals, peer: channel.remoteAddress?.description ?? "?"))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        GRPCServerConnectionHandler(
                            configuration: configuration, callHandler: handler, logger: connectionLogger,
                            requestBudget: self.requestBudget))
                }
            }
        #if canImport(Glibc)
        // Our own socket, close-on-exec and released on a crash (ListeningSocket.swift).
        let descriptor = try ListeningSocket.bind(host: configuration.host, port: configuration.port)
        let channel: any Channel
        do {
            channel = try await bootstrap.withBoundSocket(descriptor).get()
        } catch {
            // Not closed here: NIO owns the descriptor from the moment it made the channel and
            // closes it with the channel on every failure after that (options, initializer,
            // registration), which is all of them but a failed fcntl/listen on the socket just
            // bound. Closing the number again could close a descriptor another thread opened
            // meanwhile; the rare leak is of a server that did not start.
            CrashPortRelease.unregister(descriptor)
            throw error
        }
        do {
            try ListeningSocket.setBacklog(descriptor, configuration.listenBacklog)
        } catch {
            // The channel owns the descriptor now: close it through the channel, once.
            CrashPortRelease.unregister(descriptor)
            try? await channel.close()
            throw error
        }
        #else
        let descriptor: CInt? = nil
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        #endif
        let port = channel.localAddress?.port ?? configuration.port
        state.withLock {
            $0.serverChannel = channel
            $0.listeningDescriptor = descriptor
            $0.port = port
        }
        channel.closeFuture.whenComplete { [self] _ in
            let expected = self.state.withLock { $0.shuttingDown }
            if !expected {
                self.logger.critical("gRPC listener on \(configuration.host):\(port) closed unexpectedly; no new connections will be accepted")
            }
        }
        logger.info("gRPC server listening on \(configuration.host):\(port)\(sslContext == nil ? "" : " (TLS, ALPN h2)")", metadata: ["grpc.max_connections": "\(maxConnections)"])
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

    /// Closes every open connection now, cancelling its calls: for a shutdown that should stop
    /// waiting for them (`shutdownGracefully` then returns as soon as they are closed).
    public func closeAllConnections() {
        let connections = state.withLock { Array($0.connections.values) }
        for connection in connections { Self.closeNow(connection) }
    }

    /// Closes a connection without waiting for anything from its peer: beneath TLS (whose own
    /// close waits for the peer's close_notify), as the watchdog's forced closes do.
    private static func closeNow(_ connection: any Channel) {
        connection.pipeline.triggerUserOutboundEvent(GRPCForceCloseEvent(), promise: nil)
        connection.close(promise: nil)
    }

    /// Stops accepting, sends GOAWAY on every connection (last-stream-id = the highest stream
    /// seen), lets in-flight calls finish for up to `timeout`, then closes what is left and
    /// shuts the event loops down.
    public func shutdownGracefully(timeout: Duration = .seconds(30)) async {
        let (serverChannel, descriptor, connections, alreadyShutDown) = state.withLock { state in
            let result = (state.serverChannel, state.listeningDescriptor, Array(state.connections.values), state.groupShutDown)
            state.shuttingDown = true
            state.groupShutDown = true
            state.serverChannel = nil
            state.listeningDescriptor = nil
            return result
        }
        guard !alreadyShutDown else { return }
        #if canImport(Glibc)
        if let descriptor { CrashPortRelease.unregister(descriptor) }
        #endif
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
            for connection in connections { Self.closeNow(connection) }
        }
        try? await group.shutdownGracefully()
        logger.info("gRPC server stopped")
    }
}
