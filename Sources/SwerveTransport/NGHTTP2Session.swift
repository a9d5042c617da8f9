internal import CNGHTTP2
import NIOCore

/// The C callbacks a session is created with. Each is a capture-free global `let` that finds
/// its owner (the channel handler) through the session's user data with `withSessionOwner`.
struct NGHTTP2Callbacks {
    var onBeginHeaders: nghttp2_on_begin_headers_callback?
    var onHeader: nghttp2_on_header_callback?
    var onFrameRecv: nghttp2_on_frame_recv_callback?
    var onDataChunkRecv: nghttp2_on_data_chunk_recv_callback?
    var onStreamClose: nghttp2_on_stream_close_callback?
    var onFrameSend: nghttp2_on_frame_send_callback?
    var onFrameNotSend: nghttp2_on_frame_not_send_callback?
}

/// One nghttp2 session and the connection it talks over: what the server's and the client's
/// connection handlers share. It owns the `nghttp2_session*` (freed in `deinit`) and does the
/// connection-level I/O: bytes in through `mem_recv`, bytes out by draining `mem_send` into one
/// buffer and one write, one coalesced flush per loop tick for answers that arrive from other
/// threads, and closing the channel once nghttp2 is done with it (or the peer broke the
/// protocol) after the last write is on the wire.
///
/// A session that honours writability (the server's) pulls from nghttp2 only while the
/// channel is writable, in writes of at most `maxDrainBytes`: what the peer does not read then
/// waits in nghttp2, whose outbound-flood limit (`NGHTTP2_ERR_FLOODED`, answered with
/// GOAWAY(ENHANCE_YOUR_CALM) by `receive`) applies, instead of piling up in NIO's write buffer.
///
/// Its owner, the handler behind the callbacks' user data, keeps what differs: which callbacks,
/// what a stream is, what to tell callers when the connection ends (`ending`). Confined to the
/// channel's event loop, like nghttp2 itself.
final class NGHTTP2Session {
    /// Which end of the connection the session speaks for.
    enum Role {
        case server, client
    }

    /// Why the session stopped; set once, when it does.
    enum Ending: Equatable {
        /// nghttp2 wants neither to read nor to write: GOAWAY exchanged and the last stream done.
        case finished
        /// The peer broke HTTP/2; GOAWAY(PROTOCOL_ERROR) was sent. Carries nghttp2's words.
        case protocolError(String)
        /// nghttp2 could not produce output (out of memory, or a callback failed hard).
        case sendFailed(String)
        /// The channel closed, failed or was closed by its owner.
        case closed
        /// The owner ended the connection with GOAWAY(`errorCode`) (`terminate`): a peer that
        /// flooded frames, or let the server's outbound buffer grow past its cap.
        case terminated(errorCode: UInt32, reason: String)
    }

    /// The most output one drain pulls from nghttp2 before writing it (and, when the session
    /// honours writability, looking at the channel again).
    static let maxDrainBytes = 1 << 20

    /// The nghttp2 session, for the owner's `nghttp2_submit_*` calls. Lives as long as this object.
    let raw: OpaquePointer
    /// nghttp2's own allocations for this session come from this pool (shim.h): its blocks are
    /// reused from request to request instead of going back to malloc. Outlives `raw`.
    private let pool: UnsafeMutablePointer<swerve_h2_pool>?
    private var context: ChannelHandlerContext?
    /// Set while attached (a deliberate cycle, broken in `detach`); the scheduled flush hops with it.
    private var loopBoundSelf: NIOLoopBound<NGHTTP2Session>?
    private var flushScheduled = false
    /// Set by the owner when a flush is sure to follow (a read being delivered: its
    /// `channelReadComplete` flushes); flushes asked for meanwhile (answers computed inline during
    /// the read) need no task of their own, and the next flush, which serves them, clears it. A
    /// task per read was, at one request per read, an allocation, a lock and a pass through the
    /// loop's task queue per request. (Once the session ends, no flush is scheduled anyway.)
    var flushFollows = false
    /// Flush tasks scheduled so far (for tests of the rule above).
    private(set) var flushTasks: UInt64 = 0
    /// Pull from nghttp2 only while the channel is writable (the server's connections): nghttp2
    /// then keeps what cannot be written in its own queue, where its outbound-flood limits apply.
    let honoursWritability: Bool
    /// Set when output was left in nghttp2 because the channel was not writable; `flush` on
    /// `channelWritabilityChanged` picks it up.
    private(set) var outputHeldBack = false
    /// Why the session stopped; nil while it runs. Nothing is read or written once it is set.
    private(set) var ending: Ending?

    /// True until the session stops.
    var isOpen: Bool { ending == nil }

    /// Creates the session and queues SETTINGS and, above 65,535, the connection receive window
    /// (SETTINGS only change stream windows); they are written once `attach` finds the channel
    /// active. The owner creates the session in its own initializer and holds it in a `let`, so
    /// reaching nghttp2 on the hot path costs no retain; it names itself with `setOwner` next.
    ///
    /// nghttp2 fails to create a session only when out of memory, where Swift itself traps.
    init(
        role: Role, callbacks: NGHTTP2Callbacks, settings: [(nghttp2_settings_id, UInt32)], connectionWindowSize: Int32,
        honoursWritability: Bool = false
    ) {
        self.honoursWritability = honoursWritability
        var set: OpaquePointer?
        let created = nghttp2_session_callbacks_new(&set)
        precondition(created == 0 && set != nil, "nghttp2_session_callbacks_new: \(nghttp2ErrorString(Int(created)))")
        if let c = callbacks.onBeginHeaders { nghttp2_session_callbacks_set_on_begin_headers_callback(set, c) }
        if let c = callbacks.onHeader { nghttp2_session_callbacks_set_on_header_callback(set, c) }
        if let c = callbacks.onFrameRecv { nghttp2_session_callbacks_set_on_frame_recv_callback(set, c) }
        if let c = callbacks.onDataChunkRecv { nghttp2_session_callbacks_set_on_data_chunk_recv_callback(set, c) }
        if let c = callbacks.onStreamClose { nghttp2_session_callbacks_set_on_stream_close_callback(set, c) }
        if let c = callbacks.onFrameSend { nghttp2_session_callbacks_set_on_frame_send_callback(set, c) }
        if let c = callbacks.onFrameNotSend { nghttp2_session_callbacks_set_on_frame_not_send_callback(set, c) }
        var session: OpaquePointer?
        let pool = swerve_h2_pool_new()
        self.pool = pool
        var mem = swerve_h2_pool_mem(pool)
        let rv = withUnsafeMutablePointer(to: &mem) { mem in
            // Without a pool (calloc failed), nghttp2's default allocator.
            let allocator = pool == nil ? nil : mem
            return switch role {
            case .server: nghttp2_session_server_new3(&session, set, nil, nil, allocator)
            case .client: nghttp2_session_client_new3(&session, set, nil, nil, allocator)
            }
        }
        nghttp2_session_callbacks_del(set)
        guard rv == 0, let session else {
            preconditionFailure("nghttp2_session_\(role)_new: \(nghttp2ErrorString(Int(rv)))")
        }
        raw = session

        let entries = settings.map { nghttp2_settings_entry(settings_id: Int32($0.0.rawValue), value: $0.1) }
        entries.withUnsafeBufferPointer {
            _ = nghttp2_submit_settings(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress, $0.count)
        }
        if connectionWindowSize > 65_535 {
            nghttp2_session_set_local_window_size(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, connectionWindowSize)
        }
    }

    deinit {
        // nghttp2_session_del runs no callbacks, so the owner may already be gone.
        nghttp2_session_del(raw)
        swerve_h2_pool_destroy(pool)
    }

    /// Blocks the session's pool handed out again and blocks it had to take from malloc, and
    /// the bytes it keeps now (for tests).
    var poolCounts: (reused: UInt64, fresh: UInt64, cachedBytes: Int) {
        guard let pool else { return (0, 0, 0) }
        return (pool.pointee.reused, pool.pointee.fresh, pool.pointee.cached_bytes)
    }

    /// Makes `owner` the callbacks' user data, unretained: the owner holds this object, and
    /// nothing reaches nghttp2 through it once the owner has left the pipeline (`detach`).
    func setOwner<Owner: AnyObject>(_ owner: Owner) {
        nghttp2_session_set_user_data(raw, Unmanaged.passUnretained(owner).toOpaque())
    }

    /// The owner joined a pipeline: output goes to `context`; the preface is written now if
    /// the channel is already active (else on `channelActive`'s flush).
    func attach(_ context: ChannelHandlerContext) {
        self.context = context
        loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        if context.channel.isActive { flush() }
    }

    /// The owner leaves the pipeline: nothing is read or written from now on, and a flush
    /// still scheduled finds the session detached and does nothing.
    func detach() {
        if ending == nil { ending = .closed }
        context = nil
        loopBoundSelf = nil
    }

    /// The channel went inactive: stop reading and writing.
    func channelClosed() {
        if ending == nil { ending = .closed }
    }

    // MARK: - Input

    /// Feeds bytes from the peer to nghttp2, which runs the owner's callbacks. When the peer
    /// broke the protocol, answers GOAWAY(PROTOCOL_ERROR), closes the connection after writing
    /// it and returns false (`ending` says why).
    func receive(_ buffer: ByteBuffer) -> Bool {
        guard ending == nil, let context else { return false }
        let rv = buffer.withUnsafeReadableBytes { bytes in
            nghttp2_session_mem_recv(raw, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        guard rv < 0 else { return true }
        if rv == Int(NGHTTP2_ERR_FLOODED.rawValue) {
            // nghttp2's outbound-flood limit: the peer sends frames that need answers (PING,
            // SETTINGS) faster than it reads them. Its GOAWAY is already queued.
            terminate(errorCode: UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue), reason: nghttp2ErrorString(rv))
            return false
        }
        nghttp2_session_terminate_session(raw, UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue))
        _ = writePendingOutput(context, ignoringWritability: true)  // the GOAWAY, if nghttp2 can still produce it
        close(.protocolError(nghttp2ErrorString(rv)))
        return false
    }

    // MARK: - Output

    /// Drains nghttp2's output into one buffer and writes it (while the channel is writable,
    /// when the session honours writability); closes the connection once nghttp2 wants neither
    /// to read nor to write (after GOAWAY and the last stream).
    func flush() {
        flushFollows = false
        guard ending == nil, let context else { return }
        if let failure = writePendingOutput(context) {
            close(.sendFailed(failure))
        } else if nghttp2_session_want_read(raw) == 0 && nghttp2_session_want_write(raw) == 0 {
            close(.finished)
        }
    }

    /// Coalesces flushes requested off the read path (answers hopping in from other threads,
    /// calls starting): one `mem_send` and one write per loop tick, however many asked.
    func scheduleFlush() {
        guard !flushScheduled, !flushFollows, ending == nil, let loopBoundSelf else { return }
        flushScheduled = true
        flushTasks &+= 1
        loopBoundSelf.eventLoop.execute {
            let session = loopBoundSelf.value
            session.flushScheduled = false
            session.flush()
        }
    }

    /// Stops the session for `reason` and closes the channel once what was written before
    /// (a GOAWAY, the last answers) is on the wire.
    func close(_ reason: Ending) {
        guard ending == nil, let context else { return }
        ending = reason
        let channel = context.channel
        context.writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Ends the connection at once with GOAWAY(`errorCode`): nothing more is read, the GOAWAY
    /// is written even if the channel is not writable (a few bytes), and the channel closes when
    /// it is on the wire (the owner force-closes a peer that never reads it).
    func terminate(errorCode: UInt32, reason: String) {
        guard ending == nil, let context else { return }
        nghttp2_session_terminate_session(raw, errorCode)
        _ = writePendingOutput(context, ignoringWritability: true)
        close(.terminated(errorCode: errorCode, reason: reason))
    }

    /// Closes the channel now, dropping whatever is still buffered: for a peer that does not
    /// read what `close` waits to write.
    func forceClose() {
        if ending == nil { ending = .closed }
        context?.close(promise: nil)
    }

    /// The first step of a graceful close (servers only): GOAWAY(NO_ERROR) with last-stream-id
    /// 2^31−1, which tells the client to open no new streams while everything it has sent, or
    /// sends before it reads this, is still served. `goAway()` later completes the close.
    func shutdownNotice() {
        guard ending == nil else { return }
        nghttp2_submit_shutdown_notice(raw)
        flush()
    }

    /// Announces GOAWAY(NO_ERROR) with the last stream processed: streams up to it finish,
    /// newer ones are refused, and `flush` closes the connection when the last one is done.
    func goAway() {
        guard ending == nil else { return }
        let lastStreamID = nghttp2_session_get_last_proc_stream_id(raw)
        nghttp2_submit_goaway(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastStreamID, UInt32(NGHTTP2_NO_ERROR.rawValue), nil, 0)
        flush()
    }

    /// RST_STREAM with `errorCode` (an `nghttp2_error_code` raw value).
    func resetStream(_ streamID: Int32, errorCode: UInt32) {
        nghttp2_submit_rst_stream(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// Writes whatever nghttp2 has to send, in writes of at most `maxDrainBytes`; returns
    /// nghttp2's error if it failed. A session that honours writability stops pulling once the
    /// channel is not writable and leaves the rest in nghttp2 (`outputHeldBack`).
    private func writePendingOutput(_ context: ChannelHandlerContext, ignoringWritability: Bool = false) -> String? {
        let gated = honoursWritability && !ignoringWritability
        outputHeldBack = false
        while true {
            if gated && !context.channel.isWritable {
                outputHeldBack = nghttp2_session_want_write(raw) != 0
                return nil
            }
            var out: ByteBuffer?
            var drained = false
            while true {
                var pointer: UnsafePointer<UInt8>?
                let n = nghttp2_session_mem_send(raw, &pointer)
                if n < 0 {
                    if let out { context.writeAndFlush(NIOAny(out), promise: nil) }
                    return nghttp2ErrorString(n)
                }
                guard n > 0, let pointer else {
                    drained = true
                    break
                }
                if out == nil { out = context.channel.allocator.buffer(capacity: max(n, 4096)) }
                out!.writeBytes(UnsafeRawBufferPointer(start: pointer, count: n))
                if out!.readableBytes >= Self.maxDrainBytes { break }
            }
            if let out {
                context.writeAndFlush(NIOAny(out), promise: nil)
            }
            // One drain for the terminating GOAWAY: a peer that is not reading gets no more.
            if drained || ignoringWritability { return nil }
        }
    }
}

@available(*, unavailable)
extension NGHTTP2Session: Sendable {}

/// Runs `body` on the owner behind a session's user data without retaining it: the owner holds
/// the session, so it outlives every callback. For the capture-free C callbacks.
@inline(__always)
func withSessionOwner<Owner: AnyObject, R>(_ userData: UnsafeMutableRawPointer?, _ body: (Owner) -> R) -> R {
    Unmanaged<Owner>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
}
