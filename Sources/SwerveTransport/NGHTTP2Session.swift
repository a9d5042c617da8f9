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
    }

    /// The nghttp2 session, for the owner's `nghttp2_submit_*` calls. Lives as long as this object.
    let raw: OpaquePointer
    private var context: ChannelHandlerContext?
    /// Set while attached (a deliberate cycle, broken in `detach`); the scheduled flush hops with it.
    private var loopBoundSelf: NIOLoopBound<NGHTTP2Session>?
    private var flushScheduled = false
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
        role: Role, callbacks: NGHTTP2Callbacks, settings: [(nghttp2_settings_id, UInt32)], connectionWindowSize: Int32
    ) {
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
        let rv =
            switch role {
            case .server: nghttp2_session_server_new(&session, set, nil)
            case .client: nghttp2_session_client_new(&session, set, nil)
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
        nghttp2_session_terminate_session(raw, UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue))
        _ = writePendingOutput(context)  // the GOAWAY, if nghttp2 can still produce it
        close(.protocolError(nghttp2ErrorString(rv)))
        return false
    }

    // MARK: - Output

    /// Drains nghttp2's output into one buffer and writes it; closes the connection once
    /// nghttp2 wants neither to read nor to write (after GOAWAY and the last stream).
    func flush() {
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
        guard !flushScheduled, ending == nil, let loopBoundSelf else { return }
        flushScheduled = true
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

    /// Writes whatever nghttp2 has to send in one buffer; returns nghttp2's error if it failed.
    private func writePendingOutput(_ context: ChannelHandlerContext) -> String? {
        var out: ByteBuffer?
        var failure: String?
        while true {
            var pointer: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(raw, &pointer)
            if n < 0 {
                failure = nghttp2ErrorString(n)
                break
            }
            guard n > 0, let pointer else { break }
            if out == nil { out = context.channel.allocator.buffer(capacity: max(n, 4096)) }
            out!.writeBytes(UnsafeRawBufferPointer(start: pointer, count: n))
        }
        if let out {
            context.writeAndFlush(NIOAny(out), promise: nil)
        }
        return failure
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
