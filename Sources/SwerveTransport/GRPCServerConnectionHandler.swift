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
    /// Request-body bytes charged to the connection's (and server's) budget for this stream.
    var charged = 0
    /// When the request body last made progress, for the request-body timeout.
    var stall = StreamStallClock()
    /// When nghttp2 last took response bytes of this stream, for the response-window timeout.
    var sendStall = StreamStallClock()

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
///
/// What one connection may hold is bounded here:
/// - Backpressure: while the channel is not writable (more than the high water mark waits in
///   NIO) nothing more is pulled from nghttp2 and nothing more is read from the socket (the
///   `read` event is held back); both resume on `channelWritabilityChanged`. Output the peer
///   does not read thus stays in nghttp2, where its own outbound-flood limits apply, and the
///   peer cannot make the server produce more until it reads.
/// - Outbound cap: response messages queued in streams (waiting for the peer's flow-control
///   window) plus bytes buffered in NIO are counted. Above half of `maxConnectionOutboundBytes`
///   no new call is handed out (complete requests wait, still charged to the request budget,
///   and go once the queue drains below it); past the whole of it, a connection whose client
///   took no response bytes for a tick or two gets GOAWAY(ENHANCE_YOUR_CALM) and is closed. A
///   client that does take its responses, however slowly, is cut off only past twice the cap:
///   below that only the calls already running add to its queue.
/// - Request-body budget: bytes are charged per DATA chunk to the connection's and the
///   server's budget and stay charged until the call is answered (a dispatched message is
///   still in memory while its call runs, so the budget bounds work in flight too) or the
///   stream closes; a stream that would go past either is refused RESOURCE_EXHAUSTED and its
///   bytes released. Once answered, the stream no longer holds its call or message.
/// - Timeouts (`ConnectionWatchdog`, one coarse tick per connection, no timer per request):
///   handshake, idle (GOAWAY), stalled request bodies, keepalive PINGs, and responses the
///   client's flow-control window has let nothing of through for `responseWindowTimeout`
///   (RST_STREAM(ENHANCE_YOUR_CALM): the stream and its queued bytes are dropped).
final class GRPCServerConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// NIO's write-buffer water marks for a connection: above `high` the channel turns
    /// unwritable and the connection stops pulling output and reading; below `low` it resumes.
    static let writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 256 << 10, high: 1 << 20)

    private let configuration: GRPCServerConfiguration
    private let callHandler: any GRPCCallHandler
    private let logger: Logger
    /// A `let`: the hot path reaches nghttp2 through it without a retain.
    private let session: NGHTTP2Session
    /// The session's allocation pool counts (for tests).
    var sessionPoolCounts: (reused: UInt64, fresh: UInt64, cachedBytes: Int) { session.poolCounts }
    /// Flush tasks the session scheduled (answers given outside a read's delivery).
    var sessionFlushTasks: UInt64 { session.flushTasks }
    /// The handler as calls see it; set while the handler is in a pipeline (a deliberate cycle,
    /// broken in handlerRemoved).
    private var loopBoundSelf: NIOLoopBound<GRPCServerConnectionHandler>?
    private var streams = StreamTable<ServerStream>()
    private var readyCalls: [GRPCServerCall] = []
    /// `readyCalls`' other buffer (empty), for `dispatchReadyCalls`.
    private var spareCalls: [GRPCServerCall] = []
    private var headerStrings = HeaderStringCache()
    /// The request header block being received (HEADERS frames and their CONTINUATIONs are never
    /// interleaved with another stream's), and its stream (0: none).
    private var pendingHead = GRPCRequestHead()
    private var pendingHeadStreamID: Int32 = 0
    /// The header list size of `pendingHead` so far, as RFC 9113 §6.5.2 counts it.
    private var pendingHeadBytes = 0
    private let maxHeaderListBytes: Int
    private var context: ChannelHandlerContext?

    // Limits (see the type's comment).
    private var requestBudget: ConnectionRequestBudget
    /// Response bytes queued in this connection's streams, not yet taken by nghttp2.
    private var queuedResponseBytes = 0
    /// The largest recent response message (decaying by 1/16 per response): what a call whose
    /// answer is deferred to the end of a dispatch burst is counted at (`dispatchReadyCalls`).
    private var typicalResponseBytes = 0
    private let outboundCap: Int
    /// Above this many queued response bytes no new call is dispatched (half the cap).
    private let softOutboundLimit: Int
    /// nghttp2 took response bytes since the last tick, and in the tick period before it: a
    /// client doing so is not cut off at the outbound cap. Set per DATA frame, not per byte.
    private var tookResponseBytes = false
    private var tookResponseBytesBefore = false
    /// Above this many queued response bytes, NIO's buffered bytes could take the total past
    /// the cap: only then is the exact total computed.
    private let outboundCheckThreshold: Int
    /// A `read` was held back while the channel was not writable (or the session stopped).
    private var readHeld = false
    /// NIO's buffered output at the last tick while not writable (`.max`: writable then).
    private var lastBufferedBytes = Int.max
    private var watchdog: ConnectionWatchdog?
    private var tickTask: RepeatedTask?
    private let timeouts: ConnectionWatchdog.Timeouts
    /// Set on every read, cleared by the tick: the hot path reads no clock.
    private var sawRead = false
    private var handshakeDone = false
    private var streamsOpened: UInt64 = 0

    init(
        configuration: GRPCServerConfiguration, callHandler: any GRPCCallHandler, logger: Logger,
        requestBudget: GRPCRequestMemoryBudget? = nil
    ) {
        self.configuration = configuration
        self.callHandler = callHandler
        self.logger = logger
        self.requestBudget = ConnectionRequestBudget(
            connectionLimit: configuration.maxConnectionRequestBytes, server: requestBudget)
        outboundCap = configuration.maxConnectionOutboundBytes
        softOutboundLimit = configuration.maxConnectionOutboundBytes / 2
        maxHeaderListBytes = max(configuration.maxHeaderListBytes, 0)
        outboundCheckThreshold = max(
            0, configuration.maxConnectionOutboundBytes - Self.writeBufferWaterMark.high - NGHTTP2Session.maxDrainBytes)
        func nanos(_ d: Duration?) -> UInt64? { d.map { UInt64(max($0.nanoseconds, 1)) } }
        timeouts = ConnectionWatchdog.Timeouts(
            handshake: nanos(configuration.handshakeTimeout), idle: nanos(configuration.idleTimeout),
            requestBody: nanos(configuration.requestBodyTimeout),
            requestBodyTotal: nanos(configuration.maxRequestBodyDuration),
            responseWindow: nanos(configuration.responseWindowTimeout),
            keepaliveInterval: nanos(configuration.keepaliveInterval),
            keepaliveTimeout: nanos(configuration.keepaliveTimeout)!,
            maxAge: nanos(configuration.maxConnectionAge), maxAgeGrace: nanos(configuration.maxConnectionAgeGrace))
        session = NGHTTP2Session(
            role: .server, callbacks: serverCallbacks,
            settings: [
                (NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, configuration.maxConcurrentStreams),
                (NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, UInt32(max(configuration.initialStreamWindowSize, 0))),
                (NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, UInt32(clamping: max(configuration.maxHeaderListBytes, 0))),
                // RFC 9218: gRPC has no use for RFC 7540's priority tree, and without it nghttp2
                // keeps no closed streams and schedules output without the dependency tree.
                (NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1),
            ],
            connectionWindowSize: configuration.connectionWindowSize, honoursWritability: true)
        session.setOwner(self)
    }

    /// Request-body bytes this connection holds now (for tests).
    var requestBytesHeld: Int { requestBudget.used }
    /// Response bytes queued in this connection's streams now (for tests).
    var responseBytesQueued: Int { queuedResponseBytes }
    /// Calls complete but not yet handed to the call handler (for tests).
    var readyCallCount: Int { readyCalls.count }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        try? context.channel.syncOptions?.setOption(.writeBufferWaterMark, value: Self.writeBufferWaterMark)
        session.attach(context)
        if context.channel.isActive { startWatchdog(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopWatchdog()
        cancelAllStreams()
        session.detach()
        loopBoundSelf = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        startWatchdog(context)
        session.flush()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopWatchdog()
        session.channelClosed()
        cancelAllStreams()
        context.fireChannelInactive()
    }

    /// Backpressure on the read side: no read while the channel cannot take our output (or
    /// the session stopped); `channelWritabilityChanged` asks again.
    func read(context: ChannelHandlerContext) {
        if session.isOpen && context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            // The held read first: the flush below usually fills the channel again (up to
            // 1 MiB), and a read asked for only if it is still writable then would starve the
            // client's WINDOW_UPDATEs, RST_STREAMs and PING ACKs for a whole long download.
            if readHeld && session.isOpen {
                readHeld = false
                context.read()
            }
            session.flush()  // what nghttp2 kept while we could not write
            resumeHeldCalls()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard session.isOpen else { return }
        sawRead = true
        // NIO ends every read that delivered data with channelReadComplete, which flushes (a read
        // error instead fires errorCaught, which ends the session).
        session.flushFollows = true
        if session.receive(unwrapInboundIn(data)) {
            dispatchReadyCalls()
        } else {
            connectionEnded()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        session.flush()
        resumeHeldCalls()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GRPCServerGracefulShutdownEvent {
            beginGracefulClose(.shutdown)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(error)")
        session.close(.closed)
    }

    /// The session stopped while reading: say why, and let go of every stream's memory now
    /// rather than when the peer finally reads our last bytes.
    @inline(never)
    private func connectionEnded() {
        switch session.ending {
        case .protocolError(let reason)?:
            logger.debug("closing HTTP/2 connection after a protocol error: \(reason)")
        case .terminated(_, let reason)?:
            logger.warning("closing HTTP/2 connection: \(reason)")
        default:
            break
        }
        cancelAllStreams()
    }

    /// Forgets every stream: cancels their calls (also those completed by this read and not yet
    /// handed out) and releases their request bytes and queued responses. Every reference from
    /// the handler to a call (`streams`, `readyCalls`) and every timer that holds the handler
    /// (deadlines) goes here: a call holds the handler (`NIOLoopBound`), so one left behind
    /// would keep the handler, its nghttp2 session and the request messages alive for ever.
    private func cancelAllStreams() {
        pendingHead = GRPCRequestHead()
        pendingHeadStreamID = 0
        if !readyCalls.isEmpty {
            let calls = readyCalls
            readyCalls.removeAll()
            for call in calls { call.markCancelled() }
        }
        let all = streams
        streams.removeAll()
        for stream in all.allValues {
            stream.deadlineTask?.cancel()
            stream.deadlineTask = nil
            stream.call?.markCancelled()
            stream.call = nil
            requestBudget.release(stream.charged)
            stream.charged = 0
            queuedResponseBytes -= stream.machine.outboundPendingBytes
        }
    }

    // MARK: - Limits: the outbound cap and the watchdog

    /// `bytes` more response bytes were queued in a stream.
    @inline(__always)
    private func responseQueued(_ bytes: Int) {
        queuedResponseBytes += bytes
        if queuedResponseBytes > outboundCheckThreshold { checkOutboundCap() }
    }

    @inline(never)
    private func checkOutboundCap() {
        guard let context, session.isOpen else { return }
        let buffered = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        let total = queuedResponseBytes + buffered
        guard total > outboundCap else { return }
        // A client that takes its responses is held back by not dispatching its new calls
        // (`dispatchReadyCalls`), not cut off, up to twice the cap: calls already running (a
        // server-streaming one with no end) must not grow the queue without bound either.
        if (tookResponseBytes || tookResponseBytesBefore) && total <= 2 * outboundCap { return }
        let reason =
            "\(describeBytes(total)) of responses wait to be sent (\(describeBytes(queuedResponseBytes)) queued for "
            + "flow-control window, \(describeBytes(buffered)) unwritten), above the connection's cap of "
            + "\(describeBytes(outboundCap)) (max-connection-outbound-bytes): GOAWAY(ENHANCE_YOUR_CALM)"
        cancelAllStreams()
        session.terminate(errorCode: NGHTTP2_ENHANCE_YOUR_CALM.rawValue, reason: reason)
        connectionEnded()
    }

    /// Server shutdown (or, from the watchdog, the connection's age): the shutdown notice now,
    /// the final GOAWAY from the watchdog `goAwayNoticeDelay` later. A connection still in its
    /// handshake (or without a watchdog) gets the final GOAWAY at once: it has sent no request.
    private func beginGracefulClose(_ reason: ConnectionWatchdog.GracefulClose) {
        guard session.isOpen else { return }
        if handshakeDone, watchdog != nil {
            if watchdog!.beginGracefulClose(reason, now: NIODeadline.now().uptimeNanoseconds) {
                session.shutdownNotice()
            }
        } else {
            session.goAway()
        }
    }

    private func startWatchdog(_ context: ChannelHandlerContext) {
        guard watchdog == nil, let loopBoundSelf else { return }
        let jitter = configuration.maxConnectionAge == nil ? 1 : Double.random(in: 0.9...1.1)
        watchdog = ConnectionWatchdog(timeouts: timeouts, now: NIODeadline.now().uptimeNanoseconds, ageJitter: jitter)
        let period = TimeAmount.nanoseconds(Int64(timeouts.tick))
        tickTask = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            loopBoundSelf.value.tick()
        }
    }

    /// Closes the connection now, dropping what is unwritten. With TLS in front, beneath it
    /// (`SocketCloseHandler`): TLS's own close sends close_notify and waits for the peer's,
    /// which a peer that reads nothing never sends. Without TLS the event is not understood
    /// and the session's close does it.
    private func forceClose() {
        context?.triggerUserOutboundEvent(GRPCForceCloseEvent(), promise: nil)
        session.forceClose()
    }

    private func stopWatchdog() {
        tickTask?.cancel()
        tickTask = nil
    }

    /// The connection's one timer: handshake, idle, keepalive, closing, stalled request bodies.
    private func tick() {
        guard var dog = watchdog, let context else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        // While the channel is not writable, reads are held back; the client is not to blame
        // for the silence as long as it takes our output (the socket drains).
        let writable = context.channel.isWritable
        var socketDraining = false
        if writable {
            lastBufferedBytes = .max
        } else {
            let buffered = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
            socketDraining = buffered < lastBufferedBytes
            lastBufferedBytes = buffered
        }
        let action = dog.tick(
            now: now, sawRead: sawRead || socketDraining, openStreams: streams.count, streamsOpened: streamsOpened,
            closing: !session.isOpen)
        watchdog = dog
        sawRead = false
        tookResponseBytesBefore = tookResponseBytes
        tookResponseBytes = false
        if queuedResponseBytes > outboundCheckThreshold {
            checkOutboundCap()
            guard session.isOpen else { return }
        }
        resumeHeldCalls()
        switch action {
        case .none:
            break
        case .closeHandshakeTimedOut:
            logger.debug(
                "closing connection: no HTTP/2 preface and SETTINGS within \(describeDuration(timeouts.handshake ?? 0)) (handshake-timeout)")
            forceClose()
            return
        case .goAwayIdle:
            logger.debug("closing connection: no open stream for \(describeDuration(timeouts.idle ?? 0)) (idle-timeout): GOAWAY")
            session.goAway()
            return
        case .sendPing:
            let opaque: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x73, 0x77, 0x65, 0x72, 0x76, 0x65, 0x6b, 0x61)
            _ = withUnsafeBytes(of: opaque) {
                nghttp2_submit_ping(session.raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress?.assumingMemoryBound(to: UInt8.self))
            }
            session.flush()
        case .closeKeepaliveTimedOut:
            logger.info(
                "closing connection: keepalive PING not acknowledged within \(describeDuration(timeouts.keepaliveTimeout)) (keepalive-timeout)")
            cancelAllStreams()
            forceClose()
            return
        case .forceClose:
            logger.debug("closing connection: it did not finish closing within \(describeDuration(timeouts.closeGrace))")
            cancelAllStreams()
            forceClose()
            return
        case .sendAgeNotice:
            logger.debug("connection reached its age of \(describeDuration(dog.ageLimit ?? 0)) (max-connection-age): GOAWAY")
            configuration.connectionAgeObserver?()
            session.shutdownNotice()
        case .sendFinalGoAway:
            session.goAway()
            guard session.isOpen else { return }
        case .closeAgeGraceExpired:
            logger.info(
                "closing connection: \(streams.count) call(s) still running \(describeDuration(timeouts.maxAgeGrace ?? 0)) after its age GOAWAY (max-connection-age-grace); cancelled")
            cancelAllStreams()
            forceClose()
            return
        }
        if timeouts.requestBody != nil || timeouts.requestBodyTotal != nil, !streams.isEmpty {
            checkStalledStreams(now: now, context)
        }
        if let limit = timeouts.responseWindow, !streams.isEmpty {
            checkBlockedResponses(now: now, limit: limit, writable: writable, socketDraining: socketDraining)
        }
    }

    /// Streams whose queued response nghttp2 took nothing of for `limit`: the client's
    /// flow-control window (stream or connection) stays shut, or the client does not read at
    /// all. Reset with ENHANCE_YOUR_CALM, which drops the stream and its queued bytes. While the
    /// channel is not writable nothing is pulled from nghttp2; that is no one's fault as long
    /// as the socket drains (a slow link), so the clocks restart; a socket that drains nothing
    /// for `limit` is a client that reads nothing, and its connection is ended (the resets
    /// could not be written either).
    @inline(never)
    private func checkBlockedResponses(now: UInt64, limit: UInt64, writable: Bool, socketDraining: Bool) {
        var blocked: [ServerStream] = []
        for stream in streams.allValues {
            if stream.machine.outboundPendingBytes == 0 {
                stream.sendStall.progressed = true  // nothing waits: the clock starts when something does
            } else if stream.sendStall.tick(now: now, limit: limit, paused: socketDraining) {
                blocked.append(stream)
            }
        }
        guard !blocked.isEmpty, session.isOpen else { return }
        if !writable {
            let reason =
                "the client read nothing of its responses for \(describeDuration(limit)) (response-window-timeout): "
                + "GOAWAY(ENHANCE_YOUR_CALM)"
            cancelAllStreams()
            session.terminate(errorCode: NGHTTP2_ENHANCE_YOUR_CALM.rawValue, reason: reason)
            connectionEnded()
            return
        }
        for stream in blocked {
            let message =
                "resetting stream \(stream.id) (\(stream.machine.method)): \(describeBytes(stream.machine.outboundPendingBytes)) "
                + "of response waited \(describeDuration(limit)) without the client's flow-control window letting any "
                + "through (response-window-timeout): RST_STREAM(ENHANCE_YOUR_CALM)"
            logger.info("\(message)")
            session.resetStream(stream.id, errorCode: NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
        }
        session.flush()
    }

    @inline(never)
    private func checkStalledStreams(now: UInt64, _ context: ChannelHandlerContext) {
        let limit = timeouts.requestBody ?? .max
        // Not reading (backpressure) or not writing (window updates held back): not the client's fault.
        let paused = readHeld || !context.channel.isWritable || session.outputHeldBack
        var stalled: [ServerStream] = []
        var tooSlow: [ServerStream] = []
        for stream in streams.allValues where stream.machine.isReceivingRequest || stream.machine.isAwaitingHeaders {
            if stream.stall.tick(now: now, limit: limit, paused: paused) {
                stalled.append(stream)
            } else if let total = timeouts.requestBodyTotal, stream.stall.activeNanos >= total,
                stream.machine.isReceivingRequest
            {
                tooSlow.append(stream)
            }
        }
        for stream in tooSlow {
            // Trickling a byte now and then resets the stall clock but not this one.
            let total = timeouts.requestBodyTotal ?? 0
            let status = GRPCStatus(
                .deadlineExceeded,
                "request body too slow: not complete \(describeDuration(total)) after its headers "
                    + "(the server's max-request-body-duration); the stream is closed")
            perform(stream.machine.refuse(status), on: stream)
        }
        if !tooSlow.isEmpty && stalled.isEmpty { session.flush() }
        for stream in stalled {
            if stream.machine.isAwaitingHeaders {
                // A header block cut off mid-way blocks the whole connection (nothing else may
                // come between its frames): end the connection.
                logger.debug("closing connection: stream \(stream.id)'s header block stalled for \(describeDuration(limit))")
                cancelAllStreams()
                session.terminate(errorCode: NGHTTP2_NO_ERROR.rawValue, reason: "request header block stalled")
                return
            }
            let status = GRPCStatus(
                .deadlineExceeded,
                "request body stalled: no request bytes arrived for \(describeDuration(limit)) "
                    + "(the server's request-body-timeout); the stream is closed")
            perform(stream.machine.refuse(status), on: stream)
        }
        if !stalled.isEmpty { session.flush() }
    }

    fileprivate func settingsReceived() {
        guard !handshakeDone else { return }
        handshakeDone = true
        watchdog?.handshakeCompleted()
    }

    fileprivate func pingAcknowledged() {
        watchdog?.pingAcknowledged()
    }

    /// Hands complete calls to the call handler, in order, while the connection's queued
    /// responses stay at or below `softOutboundLimit`; the rest wait in `readyCalls` for
    /// `resumeHeldCalls`. (Their deadline timers already run.)
    private func dispatchReadyCalls() {
        guard !readyCalls.isEmpty else { return }
        // Two buffers in turn: copying the array and emptying it "keeping capacity" allocated a
        // new buffer on every dispatch (the copy still shared the old one).
        var calls = spareCalls
        spareCalls = []
        swap(&calls, &readyCalls)
        var next = 0
        callHandler.dispatchBurst { flush in
            // Calls handed out whose answers may be deferred to the burst's end: each counted at
            // the largest recent answer, so the answers not yet seen cannot take the queue past
            // the soft limit; until an answer has been seen, each call is flushed at once.
            var unseen = 0
            while next < calls.count && session.isOpen {
                if queuedResponseBytes + unseen * typicalResponseBytes > softOutboundLimit {
                    guard unseen > 0 else { break }
                    flush()
                    unseen = 0
                    continue
                }
                let call = calls[next]
                next += 1
                guard !call.isCancelled else { continue }
                callHandler.handle(call)
                unseen += 1
                if typicalResponseBytes == 0 {
                    flush()
                    unseen = 0
                }
            }
        }
        if next < calls.count { holdBack(calls[next...]) }
        calls.removeAll(keepingCapacity: true)
        spareCalls = calls
    }

    @inline(never)
    private func holdBack(_ calls: ArraySlice<GRPCServerCall>) {
        guard session.isOpen else {
            for call in calls { call.markCancelled() }
            return
        }
        readyCalls.insert(contentsOf: calls, at: 0)
    }

    /// Dispatches calls held back by `dispatchReadyCalls` once the queue has drained.
    @inline(__always)
    private func resumeHeldCalls() {
        if !readyCalls.isEmpty && queuedResponseBytes <= softOutboundLimit && session.isOpen { dispatchReadyCalls() }
    }

    // MARK: - Responses (called on the loop by GRPCServerCall)

    func send(streamID: Int32, message: [UInt8]) {
        guard let stream = streams[streamID] else { return }
        typicalResponseBytes = max(message.count, typicalResponseBytes - typicalResponseBytes / 16)
        let before = stream.machine.outboundPendingBytes
        let action = stream.machine.sendMessage(message)
        responseQueued(stream.machine.outboundPendingBytes - before)
        perform(action, on: stream)
    }

    /// The response bytes `streamID` has queued (nil when there is no such stream).
    func queuedResponseBytes(streamID: Int32) -> Int? {
        streams[streamID]?.machine.outboundPendingBytes
    }

    func finish(streamID: Int32, status: GRPCStatus) {
        guard let stream = streams[streamID] else { return }
        // Answered: the deadline no longer matters (a no-op if it already fired).
        cancelDeadlineTimer(stream)
        perform(stream.machine.finish(status), on: stream)
        answered(stream)
    }

    func respond(streamID: Int32, message: [UInt8]) {
        guard let stream = streams[streamID] else { return }
        typicalResponseBytes = max(message.count, typicalResponseBytes - typicalResponseBytes / 16)
        cancelDeadlineTimer(stream)
        let before = stream.machine.outboundPendingBytes
        let action = stream.machine.respond(message)
        responseQueued(stream.machine.outboundPendingBytes - before)
        perform(action, on: stream)
        answered(stream)
    }

    /// The call gave its answer: the request message is no longer needed, so its bytes go back
    /// to the budgets and the stream lets go of the call (and through it the message), although
    /// the stream stays open until the response is out (which a client's flow-control window
    /// may delay: see `checkBlockedResponses`).
    @inline(__always)
    private func answered(_ stream: ServerStream) {
        if stream.charged > 0 {
            requestBudget.release(stream.charged)
            stream.charged = 0
        }
        stream.call = nil
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
    private func perform(_ action: consuming GRPCServerStreamStateMachine.Action, on stream: ServerStream) {
        switch consume action {
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
        // The state machine dropped the request bytes: give them back to the budgets.
        requestBudget.release(stream.charged)
        stream.charged = 0
        submitTrailersOnly(stream, response)
    }

    @inline(never)
    private func cancelCall(on stream: ServerStream, answer: GRPCStatus?) {
        cancelDeadlineTimer(stream)
        guard let call = stream.call, call.markCancelled() else { return }
        if let answer {
            perform(stream.machine.finish(answer), on: stream)
            answered(stream)
        } else {
            logger.debug("call \(call.method) on stream \(stream.id) cancelled: the stream closed")
        }
    }

    /// `request` is consumed: its method, header bytes and message move into the call.
    private func dispatch(_ request: consuming GRPCServerStreamStateMachine.Request, on stream: ServerStream) {
        guard let loopBoundSelf else { return }
        let deadline = request.deadline.map { NIODeadline.uptimeNanoseconds($0) }
        let call = GRPCServerCall(request: consume request, streamID: stream.id, connection: loopBoundSelf)
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
        streamsOpened &+= 1
        streams[streamID] = ServerStream(id: streamID, maxMessageSize: configuration.maxReceiveMessageSize)
        pendingHead = GRPCRequestHead()
        pendingHeadStreamID = streamID
        pendingHeadBytes = 0
    }

    fileprivate func header(
        streamID: Int32, name: UnsafePointer<UInt8>?, nameLength: Int, value: UnsafePointer<UInt8>?, valueLength: Int
    ) {
        guard pendingHeadStreamID == streamID else { return }
        // Counted before anything is kept: through HPACK a 16 KiB frame can name megabytes of
        // fields (1-byte references to a large dynamic-table entry).
        pendingHeadBytes &+= nameLength &+ valueLength &+ 32
        if pendingHeadBytes > maxHeaderListBytes {
            headerListTooLarge()
            return
        }
        pendingHead.append(name: name, nameLength, value: value, valueLength, strings: &headerStrings)
    }

    /// The header list being received went past `maxHeaderListBytes`: drop what was kept; the
    /// stream is refused RESOURCE_EXHAUSTED when the block ends.
    @inline(never)
    private func headerListTooLarge() {
        guard pendingHead.exceededListLimit == nil else { return }
        pendingHead = GRPCRequestHead()
        pendingHead.exceededListLimit = maxHeaderListBytes
    }

    fileprivate func requestHeadersReceived(streamID: Int32) {
        guard pendingHeadStreamID == streamID else { return }
        // Swapped out, not copied: a copy retains each of its strings and its field bytes, and
        // the reset releases them again.
        var head = GRPCRequestHead()
        swap(&head, &pendingHead)
        pendingHeadStreamID = 0
        guard let stream = streams[streamID] else { return }
        perform(stream.machine.receiveHeaders(consume head, now: { NIODeadline.now().uptimeNanoseconds }), on: stream)
    }

    fileprivate func dataReceived(streamID: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[streamID] else { return }
        if stream.machine.isReceivingRequest {
            stream.stall.progressed = true
            if let refusal = requestBudget.charge(bytes.count) {
                refuseOverBudget(stream, refusal)
                return
            }
            stream.charged += bytes.count
        }
        perform(stream.machine.receiveData(bytes), on: stream)
    }

    @inline(never)
    private func refuseOverBudget(_ stream: ServerStream, _ refusal: ConnectionRequestBudget.Refusal) {
        perform(stream.machine.refuse(ConnectionRequestBudget.status(for: refusal)), on: stream)
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
        requestBudget.release(stream.charged)
        stream.charged = 0
        queuedResponseBytes -= stream.machine.outboundPendingBytes
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
            queuedResponseBytes -= written
            stream.sendStall.progressed = true
            tookResponseBytes = true
            return written
        case .deferred:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        case .lastData(let written, let status):
            queuedResponseBytes -= written
            tookResponseBytes = true
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
        case NGHTTP2_SETTINGS.rawValue:
            if frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 { handler.settingsReceived() }
        case NGHTTP2_PING.rawValue:
            if frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 { handler.pingAcknowledged() }
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
