internal import CNGHTTP2
import Logging
import NIOCore
import SwerveStatus

/// One request stream on the server: its gRPC state machine and what carrying out its actions
/// needs (the call, the deadline timer). Owned by the connection handler.
private final class ServerStream {
    let id: Int32
    var machine: GRPCServerStreamStateMachine
    var call: GRPCServerCall?
    var deadlineTask: Scheduled<Void>?

    init(id: Int32, maxMessageSize: Int) {
        self.id = id
        self.machine = GRPCServerStreamStateMachine(maxMessageSize: maxMessageSize)
    }
}

/// Sent down a server connection's pipeline to start a graceful close (GOAWAY, drain, close).
struct GRPCServerGracefulShutdownEvent: Sendable {}

/// One HTTP/2 connection on the server: an `NGHTTP2Session` fed from `channelRead`, with each
/// stream's gRPC decisions made by its `GRPCServerStreamStateMachine` and carried out here
/// (`perform`), calls dispatched to the `GRPCCallHandler` and answered through `GRPCServerCall`.
final class GRPCServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let configuration: GRPCServerConfiguration
    private let callHandler: any GRPCCallHandler
    private let logger: Logger
    /// A `let`: the hot path reaches nghttp2 through it without a retain.
    private let session: NGHTTP2Session
    /// The handler as calls see it; set while the handler is in a pipeline (a deliberate cycle,
    /// broken in handlerRemoved).
    private var loopBoundSelf: NIOLoopBound<GRPCServerConnectionHandler>?
    private var streams: [Int32: ServerStream] = [:]
    private var readyCalls: [GRPCServerCall] = []
    private var headerStrings = HeaderStringCache()
    /// The request header block being received (HEADERS frames and their CONTINUATIONs are never
    /// interleaved with another stream's), and its stream (0: none).
    private var pendingHead = GRPCRequestHead()
    private var pendingHeadStreamID: Int32 = 0

    init(configuration: GRPCServerConfiguration, callHandler: any GRPCCallHandler, logger: Logger) {
        self.configuration = configuration
        self.callHandler = callHandler
        self.logger = logger
        session = NGHTTP2Session(
            role: .server, callbacks: serverCallbacks,
            settings: [
                (NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, configuration.maxConcurrentStreams),
                (NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, UInt32(max(configuration.initialStreamWindowSize, 0))),
            ],
            connectionWindowSize: configuration.connectionWindowSize)
        session.setOwner(self)
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        session.attach(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelAllStreams()
        session.detach()
        loopBoundSelf = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        session.flush()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.channelClosed()
        cancelAllStreams()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard session.isOpen else { return }
        if session.receive(unwrapInboundIn(data)) {
            dispatchReadyCalls()
        } else if case .protocolError(let reason) = session.ending {
            logger.debug("closing HTTP/2 connection after a protocol error: \(reason)")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        session.flush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GRPCServerGracefulShutdownEvent {
            session.goAway()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(error)")
        session.close(.closed)
    }

    private func cancelAllStreams() {
        pendingHead = GRPCRequestHead()
        pendingHeadStreamID = 0
        let all = streams
        streams.removeAll()
        for stream in all.values {
            stream.deadlineTask?.cancel()
            stream.call?.markCancelled()
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

    // MARK: - Responses (called on the loop by GRPCServerCall)

    func send(streamID: Int32, message: [UInt8]) {
        guard let stream = streams[streamID] else { return }
        perform(stream.machine.sendMessage(message), on: stream)
    }

    func finish(streamID: Int32, status: GRPCStatus) {
        guard let stream = streams[streamID] else { return }
        // Answered: the deadline no longer matters (a no-op if it already fired).
        cancelDeadlineTimer(stream)
        perform(stream.machine.finish(status), on: stream)
    }

    func respond(streamID: Int32, message: [UInt8]) {
        guard let stream = streams[streamID] else { return }
        cancelDeadlineTimer(stream)
        perform(stream.machine.respond(message), on: stream)
    }

    private func deadlineExpired(streamID: Int32) {
        guard let stream = streams[streamID] else { return }
        stream.deadlineTask = nil
        perform(stream.machine.deadlinePassed(), on: stream)
    }

    @inline(__always)
    private func cancelDeadlineTimer(_ stream: ServerStream) {
        if let task = stream.deadlineTask {
            task.cancel()
            stream.deadlineTask = nil
        }
    }

    // MARK: - Carrying out the state machine's actions

    /// Inlined into each event so that, with the state machine's small methods, the action
    /// of the common path is known where it is made and never materialised; the rare actions
    /// are carried out out of line.
    @inline(__always)
    private func perform(_ action: GRPCServerStreamStateMachine.Action, on stream: ServerStream) {
        switch action {
        case .none:
            return
        case .submitResponseHeaders:
            var provider = nghttp2_data_provider(
                source: nghttp2_data_source(ptr: nil), read_callback: serverDataSourceRead)
            let headers = StaticHeaders.okResponse
            let rv = nghttp2_submit_response(session.raw, stream.id, headers.nva, headers.count, &provider)
            if rv != 0 { logger.debug("nghttp2_submit_response failed: \(nghttp2ErrorString(Int(rv)))") }
        case .resumeData:
            nghttp2_session_resume_data(session.raw, stream.id)
        case .reject(let response):
            reject(stream, response)
        case .sendTrailersOnly(let response):
            submitTrailersOnly(stream, response)
        case .resetStreamNoError:
            session.resetStream(stream.id, errorCode: NGHTTP2_NO_ERROR.rawValue)
            return  // submitted from inside mem_send (a frame-send callback): the same drain sends it
        case .dispatch(let request):
            dispatch(request, on: stream)
            return  // nothing to write: the call is handed out after mem_recv returns
        case .cancelCall(let answer):
            cancelCall(on: stream, answer: answer)
            return
        }
        session.scheduleFlush()
    }

    @inline(never)
    private func reject(_ stream: ServerStream, _ response: GRPCServerStreamStateMachine.TrailersOnlyResponse) {
        logger.debug("rejecting stream \(stream.id) (\(stream.machine.method)): \(response.status)")
        submitTrailersOnly(stream, response)
    }

    @inline(never)
    private func cancelCall(on stream: ServerStream, answer: GRPCStatus?) {
        cancelDeadlineTimer(stream)
        guard let call = stream.call, call.markCancelled() else { return }
        if let answer {
            perform(stream.machine.finish(answer), on: stream)
        } else {
            logger.debug("call \(call.method) on stream \(stream.id) cancelled: the stream closed")
        }
    }

    private func dispatch(_ request: GRPCServerStreamStateMachine.Request, on stream: ServerStream) {
        guard let loopBoundSelf else { return }
        let deadline = request.deadline.map { NIODeadline.uptimeNanoseconds($0) }
        let call = GRPCServerCall(
            method: request.method, headerFields: request.headerFields, message: request.message, deadline: deadline,
            streamID: stream.id, connection: loopBoundSelf)
        stream.call = call
        if let deadline {
            let streamID = stream.id
            stream.deadlineTask = loopBoundSelf.eventLoop.scheduleTask(deadline: deadline) {
                loopBoundSelf.value.deadlineExpired(streamID: streamID)
            }
        }
        readyCalls.append(call)
    }

    @inline(never)
    private func submitTrailersOnly(_ stream: ServerStream, _ response: GRPCServerStreamStateMachine.TrailersOnlyResponse) {
        var headers = HeaderBlock(capacity: 5)
        headers.add(":status", String(response.httpStatus))
        headers.add("content-type", "application/grpc")
        headers.add("grpc-status", String(response.status.code.rawValue))
        if !response.status.message.isEmpty { headers.add("grpc-message", GRPCMessageEncoding.encode(response.status.message)) }
        if response.advertiseIdentityEncoding { headers.add("grpc-accept-encoding", "identity") }
        let rv = headers.withNV { nva, count in nghttp2_submit_response(session.raw, stream.id, nva, count, nil) }
        if rv != 0 {
            // The stream must not hang without an answer: reset it.
            logger.debug("nghttp2_submit_response failed: \(nghttp2ErrorString(Int(rv)))")
            session.resetStream(stream.id, errorCode: NGHTTP2_INTERNAL_ERROR.rawValue)
        }
    }

    // MARK: - nghttp2 callbacks

    fileprivate func beginHeaders(streamID: Int32) {
        streams[streamID] = ServerStream(id: streamID, maxMessageSize: configuration.maxReceiveMessageSize)
        pendingHead = GRPCRequestHead()
        pendingHeadStreamID = streamID
    }

    fileprivate func header(
        streamID: Int32, name: UnsafePointer<UInt8>?, nameLength: Int, value: UnsafePointer<UInt8>?, valueLength: Int
    ) {
        guard pendingHeadStreamID == streamID else { return }
        pendingHead.append(name: name, nameLength, value: value, valueLength, strings: &headerStrings)
    }

    fileprivate func requestHeadersReceived(streamID: Int32) {
        guard pendingHeadStreamID == streamID else { return }
        let head = pendingHead
        pendingHead = GRPCRequestHead()
        pendingHeadStreamID = 0
        guard let stream = streams[streamID] else { return }
        perform(stream.machine.receiveHeaders(consume head, now: { NIODeadline.now().uptimeNanoseconds }), on: stream)
    }

    fileprivate func dataReceived(streamID: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[streamID] else { return }
        perform(stream.machine.receiveData(bytes), on: stream)
    }

    fileprivate func endOfStream(streamID: Int32) {
        guard let stream = streams[streamID] else { return }
        perform(stream.machine.receiveEndOfStream(now: { NIODeadline.now().uptimeNanoseconds }), on: stream)
    }

    fileprivate func responseEndSent(streamID: Int32) {
        guard let stream = streams[streamID] else { return }
        perform(stream.machine.responseEndSent(), on: stream)
    }

    fileprivate func streamClosed(streamID: Int32, errorCode: UInt32) {
        if pendingHeadStreamID == streamID {
            pendingHead = GRPCRequestHead()
            pendingHeadStreamID = 0
        }
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        cancelDeadlineTimer(stream)
        if case .cancelCall = stream.machine.streamClosed(), let call = stream.call, call.markCancelled() {
            logger.debug("call \(call.method) on stream \(streamID) cancelled (HTTP/2 error code \(errorCode))")
        }
    }

    fileprivate func readResponseData(
        streamID: Int32, into destination: UnsafeMutableRawBufferPointer, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = streams[streamID] else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        switch stream.machine.readResponse(into: destination) {
        case .data(let written):
            return written
        case .deferred:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        case .lastData(let written, let status):
            // gRPC needs trailers after the data: end the data without ending the stream, and
            // submit the trailers from inside the callback (C-INTEROP.md).
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            let rv: Int32
            if status.code == .ok && status.message.isEmpty {
                let trailers = StaticHeaders.okTrailers
                rv = nghttp2_submit_trailer(session.raw, streamID, trailers.nva, trailers.count)
            } else {
                var trailers = HeaderBlock(capacity: 2)
                trailers.add("grpc-status", String(status.code.rawValue))
                if !status.message.isEmpty { trailers.add("grpc-message", GRPCMessageEncoding.encode(status.message)) }
                rv = trailers.withNV { nva, count in nghttp2_submit_trailer(session.raw, streamID, nva, count) }
            }
            if rv != 0 {
                logger.debug("nghttp2_submit_trailer failed: \(nghttp2ErrorString(Int(rv)))")
                return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
            }
            return written
        }
    }
}

@available(*, unavailable)
extension GRPCServerConnectionHandler: Sendable {}

// MARK: - Capture-free C callbacks: each recovers its handler from the session user data.

@inline(__always)
private func withServerHandler<R>(_ userData: UnsafeMutableRawPointer?, _ body: (GRPCServerConnectionHandler) -> R) -> R {
    withSessionOwner(userData, body)
}

private let serverCallbacks = NGHTTP2Callbacks(
    onBeginHeaders: serverOnBeginHeaders, onHeader: serverOnHeader, onFrameRecv: serverOnFrameRecv,
    onDataChunkRecv: serverOnDataChunkRecv, onStreamClose: serverOnStreamClose, onFrameSend: serverOnFrameSend)

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
    // Only the HEADERS that end our side of a stream matter (trailers, trailers-only answers).
    guard let frame, frame.pointee.frameType == NGHTTP2_HEADERS.rawValue, frame.pointee.isEndStream else { return 0 }
    withServerHandler(userData) { $0.responseEndSent(streamID: frame.pointee.hd.stream_id) }
    return 0
}

private let serverDataSourceRead: nghttp2_data_source_read_callback = {
    _, streamID, buffer, length, flags, _, userData in
    withServerHandler(userData) {
        $0.readResponseData(streamID: streamID, into: UnsafeMutableRawBufferPointer(start: buffer, count: length), flags: flags!)
    }
}
