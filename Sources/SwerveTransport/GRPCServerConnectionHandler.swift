internal import CNGHTTP2
import Logging
import NIOCore
import SwerveStatus

/// What a stream's request headers said, gathered in the connection handler while the header
/// block arrives (so each field touches no stream object) and then handed to the stream.
private struct RequestHead {
    var streamID: Int32 = 0
    var path = ""
    /// ":method" when it is not POST (nil = POST, or none given yet: see `sawMethod`).
    var httpMethod: String?
    var sawMethod = false
    /// "content-type" when it is not application/grpc[+...] (nil = it is, or none given: see `sawContentType`).
    var contentType: String?
    var sawContentType = false
    var encoding: String?
    var timeout: String?
    var headerFields = HeaderFieldBytes()
}

/// The state of one request stream on the server, owned by the connection handler.
private final class ServerStream {
    let id: Int32
    var head = RequestHead()
    /// From `grpc-timeout`, counted from the arrival of the request headers.
    var deadline: NIODeadline?
    var deframer: GRPCMessageDeframer
    var message: [UInt8]?
    /// The transport answered the stream itself; further request bytes are ignored.
    var rejected = false
    var call: GRPCServerCall?
    var deadlineTask: Scheduled<Void>?

    // Response side.
    var outbound = OutboundMessageQueue()
    var headersSubmitted = false
    var deferred = false
    var finalStatus: GRPCStatus?

    init(id: Int32, maxMessageSize: Int) {
        self.id = id
        self.deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    }
}

/// Sent down a server connection's pipeline to start a graceful close (GOAWAY, drain, close).
struct GRPCServerGracefulShutdownEvent: Sendable {}

/// One HTTP/2 connection: an nghttp2 server session driven from `channelRead`, with calls
/// dispatched to the `GRPCCallHandler` and answered through `GRPCServerCall`.
final class GRPCServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let configuration: GRPCServerConfiguration
    private let callHandler: any GRPCCallHandler
    private let logger: Logger
    private var session: OpaquePointer?
    private var context: ChannelHandlerContext?
    /// The handler as calls see it; set while the handler is in a pipeline (a deliberate cycle,
    /// broken in handlerRemoved).
    private var loopBoundSelf: NIOLoopBound<GRPCServerConnectionHandler>?
    private var streams: [Int32: ServerStream] = [:]
    private var readyCalls: [GRPCServerCall] = []
    private var flushScheduled = false
    private var closing = false
    private var headerStrings = HeaderStringCache()
    /// The request header block being received (HEADERS frames and their CONTINUATIONs are never
    /// interleaved with another stream's).
    private var pendingHead = RequestHead()

    init(configuration: GRPCServerConfiguration, callHandler: any GRPCCallHandler, logger: Logger) {
        self.configuration = configuration
        self.callHandler = callHandler
        self.logger = logger
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)

        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, serverOnBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, serverOnHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, serverOnFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, serverOnDataChunkRecv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, serverOnStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, serverOnFrameSend)
        var session: OpaquePointer?
        let rv = nghttp2_session_server_new(&session, callbacks, Unmanaged.passUnretained(self).toOpaque())
        nghttp2_session_callbacks_del(callbacks)
        guard rv == 0, let session else {
            logger.error("nghttp2_session_server_new failed: \(nghttp2ErrorString(Int(rv)))")
            context.close(promise: nil)
            return
        }
        self.session = session
        _ = submitSettings(
            session,
            [
                (NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, configuration.maxConcurrentStreams),
                (NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, UInt32(max(configuration.initialStreamWindowSize, 0))),
            ])
        if configuration.connectionWindowSize > 65_535 {
            nghttp2_session_set_local_window_size(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, configuration.connectionWindowSize)
        }
        if context.channel.isActive { flush() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelAllStreams()
        if let session { nghttp2_session_del(session) }
        session = nil
        self.context = nil
        loopBoundSelf = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        flush()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        cancelAllStreams()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let session, !closing else { return }
        let rv = buffer.withUnsafeReadableBytes { bytes in
            nghttp2_session_mem_recv(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        if rv < 0 {
            logger.debug("closing HTTP/2 connection after a protocol error: \(nghttp2ErrorString(rv))")
            nghttp2_session_terminate_session(session, UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue))
            flush()
            closeConnection()
            return
        }
        dispatchReadyCalls()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GRPCServerGracefulShutdownEvent {
            initiateGracefulShutdown()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(error)")
        closeConnection()
    }

    // MARK: - Output

    /// Drains nghttp2's output into one buffer and writes it; closes the connection once
    /// nghttp2 wants neither to read nor to write (after GOAWAY and the last stream).
    private func flush() {
        guard let session, let context, !closing else { return }
        var out: ByteBuffer?
        while true {
            var pointer: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &pointer)
            if n < 0 {
                logger.debug("nghttp2_session_mem_send failed: \(nghttp2ErrorString(n))")
                closeConnection()
                return
            }
            guard n > 0, let pointer else { break }
            if out == nil { out = context.channel.allocator.buffer(capacity: max(n, 4096)) }
            out!.writeBytes(UnsafeRawBufferPointer(start: pointer, count: n))
        }
        if let out {
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        if nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 {
            closeConnection()
        }
    }

    /// Coalesces flushes requested from response hops: one mem_send + write per loop tick.
    private func scheduleFlush() {
        guard !flushScheduled, let loopBoundSelf else { return }
        flushScheduled = true
        loopBoundSelf.eventLoop.execute {
            let handler = loopBoundSelf.value
            handler.flushScheduled = false
            handler.flush()
        }
    }

    private func closeConnection() {
        guard !closing, let context else { return }
        closing = true
        // Close after the last write (a GOAWAY) is on the wire.
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    private func initiateGracefulShutdown() {
        guard let session, !closing else { return }
        let lastStreamID = nghttp2_session_get_last_proc_stream_id(session)
        nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastStreamID, UInt32(NGHTTP2_NO_ERROR.rawValue), nil, 0)
        flush()
    }

    private func cancelAllStreams() {
        pendingHead = RequestHead()
        let all = streams
        streams.removeAll()
        for stream in all.values {
            stream.deadlineTask?.cancel()
            stream.call?.markCancelled()
        }
    }

    // MARK: - Responses (called on the loop by GRPCServerCall)

    func send(streamID: Int32, message: [UInt8]) {
        guard let stream = streams[streamID], stream.finalStatus == nil else { return }
        stream.outbound.append(message)
        startOrResumeResponse(stream)
        scheduleFlush()
    }

    func finish(streamID: Int32, status: GRPCStatus) {
        guard let stream = streams[streamID], stream.finalStatus == nil else { return }
        complete(stream, status)
        scheduleFlush()
    }

    func respond(streamID: Int32, message: [UInt8]) {
        guard let stream = streams[streamID], stream.finalStatus == nil else { return }
        stream.outbound.append(message)
        complete(stream, .ok)
        scheduleFlush()
    }

    private func complete(_ stream: ServerStream, _ status: GRPCStatus) {
        stream.deadlineTask?.cancel()
        stream.deadlineTask = nil
        stream.finalStatus = status
        if !stream.headersSubmitted && stream.outbound.isEmpty && status.code != .ok {
            submitTrailersOnly(stream, status)
        } else {
            startOrResumeResponse(stream)
        }
    }

    private func startOrResumeResponse(_ stream: ServerStream) {
        guard let session else { return }
        if !stream.headersSubmitted {
            stream.headersSubmitted = true
            var provider = nghttp2_data_provider(
                source: nghttp2_data_source(ptr: nil), read_callback: serverDataSourceRead)
            let headers = StaticHeaders.okResponse
            let rv = nghttp2_submit_response(session, stream.id, headers.nva, headers.count, &provider)
            if rv != 0 { logger.debug("nghttp2_submit_response failed: \(nghttp2ErrorString(Int(rv)))") }
        } else if stream.deferred {
            stream.deferred = false
            nghttp2_session_resume_data(session, stream.id)
        }
    }

    private func submitTrailersOnly(_ stream: ServerStream, _ status: GRPCStatus, httpStatus: String = "200") {
        guard let session else { return }
        stream.headersSubmitted = true
        stream.finalStatus = status
        var headers = HeaderBlock(capacity: 4)
        headers.add(":status", httpStatus)
        headers.add("content-type", "application/grpc")
        headers.add("grpc-status", String(status.code.rawValue))
        if !status.message.isEmpty { headers.add("grpc-message", GRPCMessageEncoding.encode(status.message)) }
        if status.code == .unimplemented && stream.head.encoding != nil { headers.add("grpc-accept-encoding", "identity") }
        let rv = headers.withNV { nva, count in nghttp2_submit_response(session, stream.id, nva, count, nil) }
        if rv != 0 {
            // The stream must not hang without an answer: reset it.
            logger.debug("nghttp2_submit_response failed: \(nghttp2ErrorString(Int(rv)))")
            nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, UInt32(NGHTTP2_INTERNAL_ERROR.rawValue))
        }
    }

    /// The transport answers a stream itself (bad headers, bad framing) before any call exists.
    private func reject(_ stream: ServerStream, _ status: GRPCStatus, httpStatus: String = "200") {
        guard !stream.rejected else { return }
        stream.rejected = true
        stream.deframer = GRPCMessageDeframer(maxMessageSize: 0)  // release buffered bytes
        logger.debug("rejecting stream \(stream.id) (\(stream.head.path)): \(status)")
        submitTrailersOnly(stream, status, httpStatus: httpStatus)
        // The RST_STREAM(NO_ERROR) that stops a client still uploading is submitted once these
        // headers are on their way (`responseHeadersSent`): submitted now, it would make
        // nghttp2 drop the HEADERS.
        scheduleFlush()
    }

    private func deadlineExpired(streamID: Int32) {
        guard let stream = streams[streamID], let call = stream.call, stream.finalStatus == nil else { return }
        stream.deadlineTask = nil
        if call.markCancelled() {
            complete(stream, GRPCStatus(.deadlineExceeded, "deadline exceeded"))
            scheduleFlush()
        }
    }

    private func dispatchReadyCalls() {
        guard !readyCalls.isEmpty else { return }
        let calls = readyCalls
        readyCalls.removeAll(keepingCapacity: true)
        for call in calls where !call.isCancelled {
            callHandler.handle(call)
        }
    }

    // MARK: - nghttp2 callbacks

    fileprivate func beginHeaders(streamID: Int32) {
        streams[streamID] = ServerStream(id: streamID, maxMessageSize: configuration.maxReceiveMessageSize)
        pendingHead = RequestHead(streamID: streamID)
    }

    fileprivate func header(
        streamID: Int32, name: UnsafePointer<UInt8>?, nameLength: Int, value: UnsafePointer<UInt8>?, valueLength: Int
    ) {
        guard pendingHead.streamID == streamID else { return }
        if nameLength > 0, name![0] == UInt8(ascii: ":") {
            if bytesEqual(name, nameLength, ":path") {
                pendingHead.path = headerStrings.string(value, valueLength)
            } else if bytesEqual(name, nameLength, ":method") {
                pendingHead.sawMethod = true
                pendingHead.httpMethod = bytesEqual(value, valueLength, "POST") ? nil : makeString(value, valueLength)
            }
            return
        }
        if bytesEqual(name, nameLength, "content-type") {
            pendingHead.sawContentType = true
            pendingHead.contentType = bytesHavePrefix(value, valueLength, "application/grpc") ? nil : makeString(value, valueLength)
        } else if bytesEqual(name, nameLength, "grpc-timeout") {
            pendingHead.timeout = makeString(value, valueLength)
        } else if bytesEqual(name, nameLength, "grpc-encoding") {
            pendingHead.encoding = makeString(value, valueLength)
        }
        pendingHead.headerFields.append(name: name, nameLength, value: value, valueLength)
    }

    fileprivate func requestHeadersReceived(streamID: Int32) {
        guard pendingHead.streamID == streamID else { return }
        let head = pendingHead
        pendingHead = RequestHead()
        guard let stream = streams[streamID] else { return }
        stream.head = head
        if !head.sawContentType || head.contentType != nil {
            reject(
                stream, GRPCStatus(.unknown, "unsupported content-type '\(head.contentType ?? "")': expected application/grpc"),
                httpStatus: "415")
        } else if !head.sawMethod || head.httpMethod != nil {
            reject(stream, GRPCStatus(.unimplemented, "HTTP method \(head.httpMethod ?? "") is not supported: gRPC uses POST"))
        } else if let encoding = head.encoding, encoding != "identity" {
            reject(stream, GRPCStatus(.unimplemented, "grpc-encoding '\(encoding)' is not supported: only identity"))
        } else if let timeout = head.timeout {
            if let duration = GRPCTimeout.parse(timeout) {
                stream.deadline = NIODeadline.now() + TimeAmount.nanoseconds(duration.nanoseconds)
            } else {
                reject(stream, GRPCStatus(.invalidArgument, "invalid grpc-timeout '\(timeout)'"))
            }
        }
    }

    fileprivate func dataReceived(streamID: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[streamID], !stream.rejected, stream.call == nil else { return }
        stream.deframer.append(bytes)
        do {
            while let message = try stream.deframer.next() {
                if stream.message == nil {
                    stream.message = message
                } else {
                    reject(stream, GRPCStatus(.unimplemented, "client streaming is not supported: more than one request message"))
                    return
                }
            }
        } catch {
            reject(stream, error)
        }
    }

    fileprivate func endOfStream(streamID: Int32) {
        guard let stream = streams[streamID], !stream.rejected, stream.call == nil, let loopBoundSelf else { return }
        if stream.deframer.hasPartialMessage {
            reject(stream, GRPCStatus(.internal, "request stream ended in the middle of a message"))
            return
        }
        guard let message = stream.message else {
            reject(stream, GRPCStatus(.invalidArgument, "no request message"))
            return
        }
        stream.message = nil
        let deadline = stream.deadline
        if let deadline, deadline <= .now() {
            // Expired while the request was arriving: the handler never sees it.
            reject(stream, GRPCStatus(.deadlineExceeded, "deadline exceeded before the request was complete"))
            return
        }
        let call = GRPCServerCall(
            method: stream.head.path, headerFields: stream.head.headerFields, message: message, deadline: deadline,
            streamID: streamID, connection: loopBoundSelf)
        stream.call = call
        if let deadline {
            stream.deadlineTask = loopBoundSelf.eventLoop.scheduleTask(deadline: deadline) {
                loopBoundSelf.value.deadlineExpired(streamID: streamID)
            }
        }
        readyCalls.append(call)
    }

    /// A HEADERS frame went out. After a rejection's trailers-only response, tell a client
    /// that is still uploading to stop: RST_STREAM(NO_ERROR) after a complete response is what
    /// RFC 9113 §8.1 prescribes, and it spares us reading a body we will ignore.
    fileprivate func responseHeadersSent(streamID: Int32, endStream: Bool) {
        guard endStream, let session, let stream = streams[streamID], stream.rejected,
            nghttp2_session_get_stream_remote_close(session, streamID) == 0
        else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, UInt32(NGHTTP2_NO_ERROR.rawValue))
    }

    fileprivate func streamClosed(streamID: Int32, errorCode: UInt32) {
        if pendingHead.streamID == streamID { pendingHead = RequestHead() }
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        stream.deadlineTask?.cancel()
        if let call = stream.call, call.markCancelled() {
            logger.debug("call \(call.method) on stream \(streamID) cancelled (HTTP/2 error code \(errorCode))")
        }
    }

    fileprivate func readResponseData(
        streamID: Int32, into destination: UnsafeMutableRawBufferPointer, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let session, let stream = streams[streamID] else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let written = stream.outbound.read(into: destination)
        guard stream.outbound.isEmpty else { return written }
        if let status = stream.finalStatus {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            let rv: Int32
            if status.code == .ok && status.message.isEmpty {
                let trailers = StaticHeaders.okTrailers
                rv = nghttp2_submit_trailer(session, streamID, trailers.nva, trailers.count)
            } else {
                var trailers = HeaderBlock(capacity: 2)
                trailers.add("grpc-status", String(status.code.rawValue))
                if !status.message.isEmpty { trailers.add("grpc-message", GRPCMessageEncoding.encode(status.message)) }
                rv = trailers.withNV { nva, count in nghttp2_submit_trailer(session, streamID, nva, count) }
            }
            if rv != 0 {
                logger.debug("nghttp2_submit_trailer failed: \(nghttp2ErrorString(Int(rv)))")
                return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
            }
            return written
        }
        if written == 0 {
            stream.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        return written
    }
}

@available(*, unavailable)
extension GRPCServerConnectionHandler: Sendable {}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}

// MARK: - Capture-free C callbacks: each recovers its handler from the session user data.

/// Runs `body` on the handler behind the session's user data without retaining it: the handler
/// owns the session, so it outlives every callback.
@inline(__always)
private func withServerHandler<R>(_ userData: UnsafeMutableRawPointer?, _ body: (GRPCServerConnectionHandler) -> R) -> R {
    Unmanaged<GRPCServerConnectionHandler>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
}

private let serverOnBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
    guard let frame, frame.pointee.frameType == NGHTTP2_HEADERS.rawValue,
        frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
    else { return 0 }
    withServerHandler(userData) { $0.beginHeaders(streamID: frame.pointee.hd.stream_id) }
    return 0
}

private let serverOnHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
    guard let frame, frame.pointee.frameType == NGHTTP2_HEADERS.rawValue,
        frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
    else { return 0 }
    withServerHandler(userData) {
        $0.header(streamID: frame.pointee.hd.stream_id, name: name, nameLength: nameLength, value: value, valueLength: valueLength)
    }
    return 0
}

private let serverOnFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
    guard let frame else { return 0 }
    let streamID = frame.pointee.hd.stream_id
    withServerHandler(userData) { handler in
        switch frame.pointee.frameType {
        case NGHTTP2_HEADERS.rawValue:
            if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST { handler.requestHeadersReceived(streamID: streamID) }
            if frame.pointee.isEndStream { handler.endOfStream(streamID: streamID) }
        case NGHTTP2_DATA.rawValue:
            if frame.pointee.isEndStream { handler.endOfStream(streamID: streamID) }
        default:
            break
        }
    }
    return 0
}

private let serverOnDataChunkRecv: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
    withServerHandler(userData) { $0.dataReceived(streamID: streamID, UnsafeRawBufferPointer(start: data, count: length)) }
    return 0
}

private let serverOnStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
    withServerHandler(userData) { $0.streamClosed(streamID: streamID, errorCode: errorCode) }
    return 0
}

private let serverOnFrameSend: nghttp2_on_frame_send_callback = { _, frame, userData in
    guard let frame, frame.pointee.frameType == NGHTTP2_HEADERS.rawValue else { return 0 }
    withServerHandler(userData) { $0.responseHeadersSent(streamID: frame.pointee.hd.stream_id, endStream: frame.pointee.isEndStream) }
    return 0
}

private let serverDataSourceRead: nghttp2_data_source_read_callback = {
    _, streamID, buffer, length, flags, _, userData in
    withServerHandler(userData) {
        $0.readResponseData(streamID: streamID, into: UnsafeMutableRawBufferPointer(start: buffer, count: length), flags: flags!)
    }
}
