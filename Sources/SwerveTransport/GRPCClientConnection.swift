internal import CNGHTTP2
import NIOCore
import NIOPosix
import NIOSSL
import SwerveStatus
import Synchronization

/// A gRPC (HTTP/2, cleartext or TLS) client connection: one TCP connection, one nghttp2 client
/// session, any number of concurrent calls multiplexed as streams.
///
/// Calls start on the connection's event loop (one hop per call); their outgoing frames are
/// written with one flush per loop tick, and each call's continuation is resumed from the loop.
/// When the connection fails, every pending call fails with UNAVAILABLE.
public final class GRPCClientConnection: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<GRPCClientConnectionHandler>

    private init(channel: any Channel, handler: NIOLoopBound<GRPCClientConnectionHandler>) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects to `host:port`: cleartext HTTP/2 with prior knowledge, or with `tls` HTTP/2
    /// over TLS (ALPN h2; returns once the handshake is done). Throws UNAVAILABLE when the
    /// connection cannot be established, INVALID_ARGUMENT when `tls` names an unusable file.
    public static func connect(
        host: String, port: Int, eventLoopGroup: (any EventLoopGroup)? = nil, maxReceiveMessageSize: Int = 64 << 20,
        tls: GRPCClientTLS? = nil
    ) async throws -> GRPCClientConnection {
        let group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        let authority = "\(host):\(port)"
        let sslContext = try tls?.makeContext()
        let handshakeDone = sslContext == nil ? nil : group.next().makePromise(of: Void.self)
        let slot = HandlerSlot()
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext, let handshakeDone {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: GRPCClientTLS.serverHostname(host)))
                        try channel.pipeline.syncOperations.addHandler(
                            ClientTLSHandshakeHandler(done: handshakeDone, authority: authority))
                    }
                    let handler = GRPCClientConnectionHandler(
                        authority: authority, maxReceiveMessageSize: maxReceiveMessageSize, scheme: sslContext == nil ? "http" : "https")
                    slot.handler.withLock { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            handshakeDone?.fail(GRPCStatus(.unavailable, "cannot connect to \(authority): \(error)"))
            throw GRPCStatus(.unavailable, "cannot connect to \(authority): \(error)")
        }
        if let handshakeDone, let tls {
            let timeout = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(tls.handshakeTimeout.nanoseconds))) {
                handshakeDone.fail(GRPCStatus(.unavailable, "TLS handshake with \(authority) took longer than \(tls.handshakeTimeout)"))
                channel.close(promise: nil)
            }
            do {
                try await handshakeDone.futureResult.get()
                timeout.cancel()
            } catch {
                timeout.cancel()
                channel.close(promise: nil)
                throw error
            }
        }
        // Kept by the initializer rather than looked up in the pipeline now: a server that
        // closes at once (a TLS port, a full listener) may have emptied the pipeline already;
        // calls on the handler then fail UNAVAILABLE, which says what happened.
        guard let handler = slot.handler.withLock({ $0 }) else {
            channel.close(promise: nil)
            throw GRPCStatus(.unavailable, "connection to \(authority) closed at once")
        }
        return GRPCClientConnection(channel: channel, handler: handler)
    }

    /// The connection handler, as the channel initializer made it.
    private final class HandlerSlot: Sendable {
        let handler = Mutex<NIOLoopBound<GRPCClientConnectionHandler>?>(nil)
    }

    /// A unary call. Throws `GRPCStatus` when the server answers a non-OK status, UNAVAILABLE
    /// when the connection is lost, DEADLINE_EXCEEDED when `timeout` passes (the timeout is
    /// also sent as `grpc-timeout`).
    public func unary(
        _ method: String, _ request: [UInt8], timeout: Duration? = nil, metadata: [(String, String)] = []
    ) async throws -> [UInt8] {
        let handler = self.handler
        return try await withCheckedThrowingContinuation { continuation in
            handler.eventLoop.execute {
                handler.value.startCall(
                    method: method, request: request, timeout: timeout, metadata: metadata,
                    responder: .unary(continuation))
            }
        }
    }

    /// A server-streaming call: one request, a stream of response messages. The stream
    /// finishes on grpc-status 0 and throws `GRPCStatus` otherwise. Dropping the iteration
    /// early resets the HTTP/2 stream.
    public func serverStreaming(
        _ method: String, _ request: [UInt8], timeout: Duration? = nil, metadata: [(String, String)] = []
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        let handler = self.handler
        handler.eventLoop.execute {
            handler.value.startCall(
                method: method, request: request, timeout: timeout, metadata: metadata,
                responder: .streaming(continuation))
        }
        return stream
    }

    /// Closes the connection; calls still pending fail with UNAVAILABLE.
    public func close() async {
        try? await channel.close()
    }
}

/// Where a call's outcome goes.
enum GRPCClientResponder {
    case unary(CheckedContinuation<[UInt8], any Error>)
    case streaming(AsyncThrowingStream<[UInt8], any Error>.Continuation)
}

/// One outgoing call's stream.
private final class ClientStream {
    let responder: GRPCClientResponder
    let request: [UInt8]
    var requestOffset = 0
    var deframer: GRPCMessageDeframer
    var response: [UInt8]?
    var httpStatus: Int?
    var grpcStatus: Int?
    var grpcMessage: String?
    var timeoutTask: Scheduled<Void>?

    init(responder: GRPCClientResponder, request: [UInt8], maxReceiveMessageSize: Int) {
        self.responder = responder
        self.request = request
        self.deframer = GRPCMessageDeframer(maxMessageSize: maxReceiveMessageSize)
    }

    /// Copies the framed request (5-byte prefix, then the message); true when all is copied.
    func readRequest(into destination: UnsafeMutableRawBufferPointer, written: inout Int) -> Bool {
        if requestOffset < 5 {
            let prefix = grpcMessagePrefix(length: request.count)
            let n = min(5 - requestOffset, destination.count)
            withUnsafeBytes(of: prefix) { p in
                destination.baseAddress!.copyMemory(from: p.baseAddress! + requestOffset, byteCount: n)
            }
            requestOffset += n
            written = n
        }
        let n = min(5 + request.count - requestOffset, destination.count - written)
        if n > 0 {
            request.withUnsafeBytes { p in
                (destination.baseAddress! + written).copyMemory(from: p.baseAddress! + (requestOffset - 5), byteCount: n)
            }
            requestOffset += n
            written += n
        }
        return requestOffset == 5 + request.count
    }

    func deliver(_ status: GRPCStatus) {
        switch responder {
        case .unary(let continuation):
            if status.code == .ok {
                if let response {
                    continuation.resume(returning: response)
                } else {
                    continuation.resume(throwing: GRPCStatus(.internal, "unary response carried no message"))
                }
            } else {
                continuation.resume(throwing: status)
            }
        case .streaming(let continuation):
            if status.code == .ok {
                continuation.finish()
            } else {
                continuation.finish(throwing: status)
            }
        }
    }
}

/// The client side of one HTTP/2 connection: an `NGHTTP2Session` driven on the channel's
/// event loop; what is the client's own is the calls: starting them as streams, timing them
/// out, and handing each its response and status.
final class GRPCClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let authority: String
    private let maxReceiveMessageSize: Int
    private let session: NGHTTP2Session
    private var loopBoundSelf: NIOLoopBound<GRPCClientConnectionHandler>?
    private var streams: [Int32: ClientStream] = [:]
    /// Set once no new call can start (GOAWAY received, connection closed or broken).
    private var unavailable: GRPCStatus?

    private let scheme: String

    init(authority: String, maxReceiveMessageSize: Int, scheme: String = "http") {
        self.authority = authority
        self.scheme = scheme
        self.maxReceiveMessageSize = maxReceiveMessageSize
        session = NGHTTP2Session(
            role: .client, callbacks: clientCallbacks,
            settings: [
                (NGHTTP2_SETTINGS_ENABLE_PUSH, 0),
                (NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20),
                (NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 1 << 20),
            ],
            connectionWindowSize: 16 << 20)
        session.setOwner(self)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        session.attach(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(GRPCStatus(.unavailable, "connection closed"))
        session.detach()
        loopBoundSelf = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        session.flush()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.channelClosed()
        failAll(endStatus)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(GRPCStatus(.unavailable, "connection error: \(error)"))
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard session.isOpen else { return }
        if !session.receive(unwrapInboundIn(data)) {
            failAll(endStatus)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        session.flush()
        if !session.isOpen { failAll(endStatus) }
        context.fireChannelReadComplete()
    }

    /// What calls are told once the session has stopped, by why it stopped.
    private var endStatus: GRPCStatus {
        switch session.ending {
        case .protocolError(let reason)?:
            GRPCStatus(.unavailable, "HTTP/2 protocol error from server: \(reason)")
        case .sendFailed(let reason)?, .terminated(_, let reason)?:
            GRPCStatus(.unavailable, "HTTP/2 session failed: \(reason)")
        case .finished?:
            unavailable ?? GRPCStatus(.unavailable, "connection closed by the server")
        case .closed?, nil:
            unavailable ?? GRPCStatus(.unavailable, "connection closed")
        }
    }

    // MARK: - Calls

    func startCall(
        method: String, request: [UInt8], timeout: Duration?, metadata: [(String, String)],
        responder: GRPCClientResponder
    ) {
        let stream = ClientStream(responder: responder, request: request, maxReceiveMessageSize: maxReceiveMessageSize)
        guard session.isOpen, let loopBoundSelf, unavailable == nil else {
            stream.deliver(unavailable ?? endStatus)
            return
        }
        var headers = HeaderBlock(capacity: 8 + metadata.count)
        headers.add(":method", "POST")
        headers.add(":scheme", scheme)
        headers.add(":path", method)
        headers.add(":authority", authority)
        headers.add("content-type", "application/grpc")
        headers.add("te", "trailers")
        headers.add("user-agent", "swerve-transport")
        if let timeout { headers.add("grpc-timeout", GRPCTimeout.encode(timeout)) }
        for (name, value) in metadata {
            headers.add(name.utf8.contains { $0 >= 0x41 && $0 <= 0x5A } ? name.lowercased() : name, value)
        }
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: clientDataSourceRead)
        let streamID = headers.withNV { nva, count in nghttp2_submit_request(session.raw, nil, nva, count, &provider, nil) }
        guard streamID > 0 else {
            stream.deliver(GRPCStatus(.unavailable, "cannot start a stream: \(nghttp2ErrorString(Int(streamID)))"))
            return
        }
        streams[streamID] = stream
        if let timeout {
            stream.timeoutTask = loopBoundSelf.eventLoop.scheduleTask(
                in: .nanoseconds(max(0, timeout.nanoseconds))
            ) {
                loopBoundSelf.value.cancel(streamID: streamID, .deadlineExceeded)
            }
        }
        if case .streaming(let continuation) = responder {
            continuation.onTermination = { reason in
                if case .cancelled = reason {
                    loopBoundSelf.eventLoop.execute {
                        loopBoundSelf.value.cancel(streamID: streamID, GRPCStatus(.cancelled, "cancelled by the client"))
                    }
                }
            }
        }
        session.scheduleFlush()
    }

    /// Ends a call locally (deadline, consumer gone): RST_STREAM(CANCEL) and deliver `status`.
    private func cancel(streamID: Int32, _ status: GRPCStatus) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        stream.timeoutTask?.cancel()
        session.resetStream(streamID, errorCode: NGHTTP2_CANCEL.rawValue)
        session.scheduleFlush()
        stream.deliver(status)
    }

    private func failAll(_ status: GRPCStatus) {
        if unavailable == nil { unavailable = status }
        let all = streams
        streams.removeAll()
        for stream in all.values {
            stream.timeoutTask?.cancel()
            stream.deliver(status)
        }
    }

    // MARK: - nghttp2 callbacks

    fileprivate func header(streamID: Int32, name: String, value: String) {
        guard let stream = streams[streamID] else { return }
        switch name {
        case ":status": stream.httpStatus = Int(value)
        case "grpc-status": stream.grpcStatus = Int(value)
        case "grpc-message": stream.grpcMessage = GRPCMessageEncoding.decode(value)
        default: break
        }
    }

    fileprivate func dataReceived(streamID: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[streamID] else { return }
        stream.deframer.append(bytes)
        do {
            while let message = try stream.deframer.next() {
                switch stream.responder {
                case .unary:
                    if stream.response == nil {
                        stream.response = message
                    } else {
                        cancel(streamID: streamID, GRPCStatus(.internal, "unary call received more than one response message"))
                        return
                    }
                case .streaming(let continuation):
                    continuation.yield(message)
                }
            }
        } catch {
            cancel(streamID: streamID, error)
        }
    }

    fileprivate func goawayReceived(lastStreamID: Int32, errorCode: UInt32) {
        if unavailable == nil {
            unavailable = GRPCStatus(.unavailable, "server is going away (GOAWAY, HTTP/2 error code \(errorCode))")
        }
    }

    fileprivate func streamClosed(streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        stream.timeoutTask?.cancel()
        var status: GRPCStatus
        if let code = stream.grpcStatus {
            status = GRPCStatus(GRPCStatusCode(rawValue: code) ?? .unknown, stream.grpcMessage ?? "")
        } else if errorCode != NGHTTP2_NO_ERROR.rawValue {
            switch errorCode {
            case NGHTTP2_REFUSED_STREAM.rawValue: status = GRPCStatus(.unavailable, "stream refused by the server")
            case NGHTTP2_CANCEL.rawValue: status = GRPCStatus(.cancelled, "stream cancelled by the server")
            case NGHTTP2_ENHANCE_YOUR_CALM.rawValue: status = GRPCStatus(.resourceExhausted, "server said ENHANCE_YOUR_CALM")
            default: status = GRPCStatus(.internal, "stream reset by the server (HTTP/2 error code \(errorCode))")
            }
        } else if let http = stream.httpStatus, http != 200 {
            status = GRPCStatus(GRPCStatusCode(httpStatus: http), "HTTP status \(http)")
        } else {
            status = GRPCStatus(.internal, "response ended without grpc-status")
        }
        if status.code == .ok && stream.deframer.hasPartialMessage {
            status = GRPCStatus(.internal, "response ended in the middle of a message")
        }
        stream.deliver(status)
    }

    fileprivate func requestNotSent(streamID: Int32, errorCode: Int32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        stream.timeoutTask?.cancel()
        stream.deliver(GRPCStatus(.unavailable, "request not sent: \(nghttp2ErrorString(Int(errorCode)))"))
    }

    fileprivate func readRequestData(
        streamID: Int32, into destination: UnsafeMutableRawBufferPointer, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = streams[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        var written = 0
        if stream.readRequest(into: destination, written: &written) {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        }
        return written
    }
}

@available(*, unavailable)
extension GRPCClientConnectionHandler: Sendable {}

// MARK: - Capture-free C callbacks

@inline(__always)
private func withClientHandler<R>(_ userData: UnsafeMutableRawPointer?, _ body: (GRPCClientConnectionHandler) -> R) -> R {
    withSessionOwner(userData, body)
}

private let clientCallbacks = NGHTTP2Callbacks(
    onHeader: clientOnHeader, onFrameRecv: clientOnFrameRecv, onDataChunkRecv: clientOnDataChunkRecv,
    onStreamClose: clientOnStreamClose, onFrameNotSend: clientOnFrameNotSend)

private let clientOnHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
    guard let frame, frame.pointee.frameType == NGHTTP2_HEADERS.rawValue else { return 0 }
    withClientHandler(userData) {
        $0.header(streamID: frame.pointee.hd.stream_id, name: makeString(name, nameLength), value: makeString(value, valueLength))
    }
    return 0
}

private let clientOnFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
    guard let frame else { return 0 }
    if frame.pointee.frameType == NGHTTP2_GOAWAY.rawValue {
        withClientHandler(userData) {
            $0.goawayReceived(lastStreamID: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code)
        }
    }
    return 0
}

private let clientOnDataChunkRecv: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
    withClientHandler(userData) { $0.dataReceived(streamID: streamID, UnsafeRawBufferPointer(start: data, count: length)) }
    return 0
}

private let clientOnStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
    withClientHandler(userData) { $0.streamClosed(streamID: streamID, errorCode: errorCode) }
    return 0
}

private let clientOnFrameNotSend: nghttp2_on_frame_not_send_callback = { _, frame, errorCode, userData in
    guard let frame, frame.pointee.frameType == NGHTTP2_HEADERS.rawValue else { return 0 }
    withClientHandler(userData) { $0.requestNotSent(streamID: frame.pointee.hd.stream_id, errorCode: errorCode) }
    return 0
}

private let clientDataSourceRead: nghttp2_data_source_read_callback = {
    _, streamID, buffer, length, flags, _, userData in
    withClientHandler(userData) {
        $0.readRequestData(streamID: streamID, into: UnsafeMutableRawBufferPointer(start: buffer, count: length), flags: flags!)
    }
}
