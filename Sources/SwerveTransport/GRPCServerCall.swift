import NIOCore
import Synchronization
import SwerveStatus

/// One incoming RPC, created on the connection's event loop once the request stream has
/// ended (END_STREAM on HEADERS or DATA) with exactly one request message.
///
/// `send`, `finish` and `respond` may be called from any thread: they hop to the event loop.
/// The first `finish`/`respond` wins; anything after it is ignored, as is anything after the
/// call was cancelled.
public final class GRPCServerCall: Sendable {
    /// The `:path`, e.g. "/inference.GRPCInferenceService/ModelInfer".
    @inlinable public var method: String { request.method }
    /// Request headers other than pseudo-headers, in arrival order (made on each access).
    public var metadata: [(name: String, value: String)] { request.headerFields.fields }
    /// The one request message, deframed (the 5-byte prefix removed).
    @inlinable public var message: [UInt8] { request.message }
    /// From `grpc-timeout`; when it passes before `finish` the transport answers
    /// DEADLINE_EXCEEDED itself and cancels the call.
    public var deadline: NIODeadline? { request.deadline.map { NIODeadline.uptimeNanoseconds($0) } }
    /// The request as the stream handed it over, moved in whole (taking its fields one by one
    /// copied them and dropped the originals: two retains and two releases more per call).
    /// Inlinable accessors, so that a handler in another module borrows `message` and `method`
    /// as it did stored properties instead of getting a copy from a getter.
    @usableFromInline let request: GRPCServerStreamStateMachine.Request

    let streamID: Int32
    private let connection: NIOLoopBound<GRPCServerConnectionHandler>
    private let state = Mutex(State.active([]))
    /// Set (inside `state`'s lock) when `state` leaves `.active`: `isCancelled`, asked several
    /// times per request, reads it without taking the lock.
    private let over = Atomic<Bool>(false)

    private enum State {
        case active([@Sendable () -> Void])
        case finished
        case cancelled
    }

    init(request: consuming GRPCServerStreamStateMachine.Request, streamID: Int32,
         connection: NIOLoopBound<GRPCServerConnectionHandler>) {
        self.request = consume request
        self.streamID = streamID
        self.connection = connection
    }

    /// Calls `body` with the value bytes of the first request header named `name` (lowercase),
    /// or nil when there is none, without making strings of the headers.
    public func withHeaderValue<R>(_ name: StaticString, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try request.headerFields.withValue(of: name, body)
    }

    /// The value of the first request header named `name` (lowercase), if any.
    public func header(_ name: String) -> String? {
        metadata.first { $0.name == name }?.value
    }

    /// True once the call is over for any reason: the client reset the stream, the connection
    /// closed, the deadline passed, or the handler finished it.
    public var isCancelled: Bool {
        over.load(ordering: .acquiring)
    }

    /// Registers `body` to run once if the call is cancelled (client RST_STREAM, connection
    /// closed, deadline passed); immediately if it already was. Callbacks registered on a call
    /// the handler finished normally never run. They run on the event loop: keep them short.
    public func onCancel(_ body: @escaping @Sendable () -> Void) {
        let runNow: Bool = state.withLock { state in
            switch state {
            case .active(var callbacks):
                callbacks.append(body)
                state = .active(callbacks)
                return false
            case .cancelled: return true
            case .finished: return false
            }
        }
        if runNow { body() }
    }

    /// Queues one response message (server streaming may call it many times).
    public func send(_ message: [UInt8]) {
        guard !isCancelled else { return }
        onLoop { $0.send(streamID: self.streamID, message: message) }
    }

    /// Ends the call with `grpc-status`/`grpc-message` trailers (a trailers-only response when
    /// nothing was sent and the status is not OK). Later calls are ignored.
    public func finish(_ status: GRPCStatus) {
        guard markFinished() else { return }
        onLoop { $0.finish(streamID: self.streamID, status: status) }
    }

    /// `send(message)` then `finish(.ok)`, in a single hop to the event loop.
    public func respond(_ message: [UInt8]) {
        guard markFinished() else { return }
        // Not `onLoop`: answering on the loop itself (cache hits, cheap RPCs) allocates no closure.
        let connection = self.connection
        let streamID = self.streamID
        if connection.eventLoop.inEventLoop {
            connection.value.respond(streamID: streamID, message: message)
        } else {
            connection.eventLoop.execute { connection.value.respond(streamID: streamID, message: message) }
        }
    }

    /// Response bytes of this call queued on the server and not yet taken by the client's
    /// flow-control window; nil once the stream is gone (reset, closed, or the event loop shut
    /// down). A server-streaming handler that produces much (file transfers) sends its next
    /// message only while this stays small, so a slow reader holds back the producer instead of
    /// filling the connection's outbound budget.
    public func queuedResponseBytes() async -> Int? {
        guard !isCancelled else { return nil }
        let connection = self.connection
        let streamID = self.streamID
        return try? await connection.eventLoop.submit { connection.value.queuedResponseBytes(streamID: streamID) }.get()
    }

    // MARK: - Transport side (event loop)

    /// Cancels an active call and runs its callbacks; false if it was already over.
    @discardableResult
    func markCancelled() -> Bool {
        let callbacks: [@Sendable () -> Void]? = state.withLock { state in
            guard case .active(let callbacks) = state else { return nil }
            state = .cancelled
            over.store(true, ordering: .releasing)
            return callbacks
        }
        guard let callbacks else { return false }
        for callback in callbacks { callback() }
        return true
    }

    private func markFinished() -> Bool {
        state.withLock { state in
            guard case .active = state else { return false }
            state = .finished
            over.store(true, ordering: .releasing)
            return true
        }
    }

    private func onLoop(_ body: @escaping @Sendable (GRPCServerConnectionHandler) -> Void) {
        let connection = self.connection
        if connection.eventLoop.inEventLoop {
            body(connection.value)
        } else {
            connection.eventLoop.execute { body(connection.value) }
        }
    }
}
