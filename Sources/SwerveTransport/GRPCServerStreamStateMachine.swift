import SwerveStatus

/// What a stream's request headers said, gathered field by field while the header block
/// arrives (in the connection handler, so each field touches no stream object) and then handed
/// to the stream's state machine in one piece.
///
/// Only what gRPC decides on is kept as Strings, and only when it is unusual: a POST and an
/// `application/grpc` content-type are recognised by comparing bytes in place.
struct GRPCRequestHead {
    var path = ""
    /// ":method" when it is not POST (nil = POST, or none given yet: see `sawMethod`).
    var httpMethod: String?
    var sawMethod = false
    /// "content-type" when it is not application/grpc[+...] (nil = it is, or none given: see `sawContentType`).
    var contentType: String?
    var sawContentType = false
    var encoding: String?
    var timeout: String?
    /// Every regular (non-pseudo) header, as it arrived, for the call's metadata.
    var headerFields = HeaderFieldBytes()
    /// Set (to the limit) when the header list went past the server's SETTINGS_MAX_HEADER_LIST_SIZE:
    /// nothing of it is kept, and the stream is refused.
    var exceededListLimit: Int?

    /// Takes one header field of the request's header block.
    mutating func append(
        name: UnsafePointer<UInt8>?, _ nameLength: Int, value: UnsafePointer<UInt8>?, _ valueLength: Int,
        strings: inout HeaderStringCache
    ) {
        if nameLength > 0, name![0] == UInt8(ascii: ":") {
            if bytesEqual(name, nameLength, ":path") {
                // The same few paths arrive on every request: served from the cache, not allocated.
                path = strings.string(value, valueLength)
            } else if bytesEqual(name, nameLength, ":method") {
                sawMethod = true
                httpMethod = bytesEqual(value, valueLength, "POST") ? nil : makeString(value, valueLength)
            }
            return
        }
        if bytesEqual(name, nameLength, "content-type") {
            sawContentType = true
            contentType = bytesHavePrefix(value, valueLength, "application/grpc") ? nil : makeString(value, valueLength)
        } else if bytesEqual(name, nameLength, "grpc-timeout") {
            timeout = makeString(value, valueLength)
        } else if bytesEqual(name, nameLength, "grpc-encoding") {
            encoding = makeString(value, valueLength)
        }
        headerFields.append(name: name, nameLength, value: value, valueLength)
    }
}

/// The gRPC rules for one server stream, as a value that takes events and returns actions.
///
/// The connection handler owns the HTTP/2 side (nghttp2, timers, the `GRPCServerCall`) and
/// carries out what this returns; every gRPC decision is made here: which request headers are
/// acceptable, when a request is complete and may be dispatched, when the transport answers a
/// stream itself (a trailers-only response) and when it answers with headers, data and trailers,
/// and when a client still uploading is told to stop. No NIO, no nghttp2, no clock: times come
/// in with the events, as nanoseconds on the monotonic clock `NIODeadline` counts
/// (`uptimeNanoseconds`), and are read only when a `grpc-timeout` needs them.
///
/// Unary and server streaming only: a call is dispatched when the request stream ends, with
/// exactly one message.
@usableFromInline
struct GRPCServerStreamStateMachine {
    /// A response that is one HEADERS frame with END_STREAM: HTTP status, content-type,
    /// `grpc-status` and `grpc-message`.
    struct TrailersOnlyResponse: Equatable {
        var status: GRPCStatus
        /// 200, or 415 for a request that is not gRPC at all (the gRPC HTTP/2 spec's advice).
        var httpStatus: Int
        /// Add `grpc-accept-encoding: identity`: the request named an encoding and the answer
        /// is UNIMPLEMENTED, so the client learns what we do accept.
        var advertiseIdentityEncoding: Bool
    }

    /// A complete request, ready to become a `GRPCServerCall`.
    @usableFromInline
    struct Request: Equatable, Sendable {
        @usableFromInline var method: String
        var headerFields: HeaderFieldBytes
        @usableFromInline var message: [UInt8]
        /// From `grpc-timeout`: uptime nanoseconds (`NIODeadline.uptimeNanoseconds`).
        var deadline: UInt64?
    }

    /// What the connection handler does next for this stream.
    enum Action: Equatable {
        /// Nothing.
        case none
        /// The transport answers the stream itself, before any call exists (bad headers, bad
        /// framing, no message, deadline already passed): send this trailers-only response.
        case reject(TrailersOnlyResponse)
        /// The request is complete: create the call and hand it to the call handler.
        case dispatch(Request)
        /// Submit the response headers with a data source that reads `readResponse(into:)`.
        case submitResponseHeaders
        /// The data source was deferred waiting for messages or the status: resume it.
        case resumeData
        /// The call ended with a non-OK status before sending anything: answer trailers-only.
        case sendTrailersOnly(TrailersOnlyResponse)
        /// The rejection's response is on its way while the client is still uploading: send
        /// RST_STREAM(NO_ERROR), as RFC 9113 §8.1 prescribes after a complete response, so the
        /// client stops sending a body nobody reads.
        case resetStreamNoError
        /// Cancel the call. If the cancellation wins (the handler had not finished it
        /// meanwhile on another thread) and `answer` is set, finish the stream with it through
        /// `finish(_:)`; nil means the stream is gone and nothing can be sent.
        case cancelCall(answer: GRPCStatus?)
    }

    /// The outcome of one read by the response's data source.
    enum ResponseRead: Equatable {
        /// This many bytes were copied; more may follow.
        case data(Int)
        /// This many bytes were copied and they are the last: end the data with these trailers.
        case lastData(Int, trailers: GRPCStatus)
        /// Nothing to send yet: defer until `resumeData`.
        case deferred
    }

    private enum Phase {
        /// Created when the header block began; the headers are not complete yet.
        case awaitingHeaders
        /// Headers accepted; request message bytes are arriving.
        case receivingRequest
        /// The transport answered the stream itself; request bytes are ignored.
        case rejected
        /// The call was handed out; its answer goes through the response events.
        case dispatched
        /// The HTTP/2 stream is closed.
        case closed
    }

    private var phase = Phase.awaitingHeaders
    /// The `:path` (empty until the headers arrive).
    private(set) var method = ""
    private var headerFields = HeaderFieldBytes()
    private var requestNamedEncoding = false
    private var deadline: UInt64?
    private var deframer: GRPCMessageDeframer
    private var message: [UInt8]?
    /// The client ended its side of the stream (END_STREAM received).
    private var requestEnded = false
    private var resetSent = false

    // Response side (phase `dispatched`).
    private var outbound = OutboundMessageQueue()
    private var responseHeadersSubmitted = false
    private var dataDeferred = false
    private var responseStatus: GRPCStatus?

    /// A stream whose request messages may be at most `maxMessageSize` bytes.
    init(maxMessageSize: Int) {
        deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    }

    /// The request headers are still arriving (a header block split over CONTINUATION frames).
    var isAwaitingHeaders: Bool { phase == .awaitingHeaders }
    /// The headers were accepted and request bytes are still expected: the bytes that arrive
    /// now are buffered (and charged to the connection's request budget).
    var isReceivingRequest: Bool { phase == .receivingRequest }
    /// Response bytes queued and not yet read out by nghttp2 (waiting for flow-control window).
    var outboundPendingBytes: Int { outbound.pendingBytes }

    // MARK: - Request events

    /// The request header block is complete. `now` is read only for a `grpc-timeout`.
    mutating func receiveHeaders(_ head: consuming GRPCRequestHead, now: () -> UInt64) -> Action {
        guard phase == .awaitingHeaders else { return .none }
        if let limit = head.exceededListLimit {
            return reject(
                GRPCStatus(
                    .resourceExhausted,
                    "request headers exceed the server's limit of \(describeBytes(limit)) (max-header-list-bytes; "
                        + "each field counts its name and value plus 32 bytes)"))
        }
        // Moved out of the consumed head (a copy would retain each and the head's end release it).
        swap(&method, &head.path)
        swap(&headerFields, &head.headerFields)
        requestNamedEncoding = head.encoding != nil
        if !head.sawContentType || head.contentType != nil {
            return reject(
                GRPCStatus(.unknown, "unsupported content-type '\(head.contentType ?? "")': expected application/grpc"),
                httpStatus: 415)
        }
        if !head.sawMethod || head.httpMethod != nil {
            return reject(GRPCStatus(.unimplemented, "HTTP method \(head.httpMethod ?? "") is not supported: gRPC uses POST"))
        }
        if let encoding = head.encoding, encoding != "identity" {
            return reject(GRPCStatus(.unimplemented, "grpc-encoding '\(encoding)' is not supported: only identity"))
        }
        if let timeout = head.timeout {
            guard let duration = GRPCTimeout.parse(timeout) else {
                return reject(GRPCStatus(.invalidArgument, "invalid grpc-timeout '\(timeout)'"))
            }
            deadline = Self.adding(duration.nanoseconds, to: now())
        }
        phase = .receivingRequest
        return .none
    }

    /// Bytes of the request body (DATA payload), in order.
    @inline(__always)
    mutating func receiveData(_ bytes: UnsafeRawBufferPointer) -> Action {
        guard phase == .receivingRequest else { return .none }
        deframer.append(bytes)
        do {
            while let next = try deframer.next() {
                guard message == nil else {
                    return reject(GRPCStatus(.unimplemented, "client streaming is not supported: more than one request message"))
                }
                message = next
            }
        } catch {
            return reject(error)
        }
        return .none
    }

    /// The client ended the request stream (END_STREAM on HEADERS or DATA). `now` is read only
    /// when the request carries a deadline.
    @inline(__always)
    mutating func receiveEndOfStream(now: () -> UInt64) -> Action {
        requestEnded = true
        guard phase == .receivingRequest else { return .none }
        if deframer.hasPartialMessage {
            return reject(GRPCStatus(.internal, "request stream ended in the middle of a message"))
        }
        guard let message else {
            return reject(GRPCStatus(.invalidArgument, "no request message"))
        }
        if let deadline, deadline <= now() {
            // Expired while the request was arriving: the handler never sees it.
            return reject(.deadlineExceeded)
        }
        self.message = nil
        phase = .dispatched
        let fields = headerFields
        headerFields = HeaderFieldBytes()
        return .dispatch(Request(method: method, headerFields: fields, message: message, deadline: deadline))
    }

    /// The transport refuses a request that is still arriving (its memory budget is spent, or
    /// its body stalled): answer `status` trailers-only and drop the bytes buffered so far.
    mutating func refuse(_ status: GRPCStatus) -> Action {
        guard phase == .receivingRequest else { return .none }
        return reject(status)
    }

    // MARK: - Response events (the call's answers, and the transport's own)

    /// The call sends one response message.
    @inline(__always)
    mutating func sendMessage(_ message: [UInt8]) -> Action {
        guard acceptsResponse else { return .none }
        outbound.append(message)
        return startOrResumeResponse()
    }

    /// The call ends with `status` (the transport's DEADLINE_EXCEEDED goes this way too).
    @inline(__always)
    mutating func finish(_ status: GRPCStatus) -> Action {
        guard acceptsResponse else { return .none }
        return complete(status)
    }

    /// The call sends its one message and ends with OK.
    @inline(__always)
    mutating func respond(_ message: [UInt8]) -> Action {
        guard acceptsResponse else { return .none }
        outbound.append(message)
        return complete(.ok)
    }

    /// The call's deadline passed. The answer is DEADLINE_EXCEEDED unless the call was answered.
    mutating func deadlinePassed() -> Action {
        acceptsResponse ? .cancelCall(answer: .deadlineExceeded) : .none
    }

    /// nghttp2 asks for response bytes: copies framed messages into `destination`, and says
    /// when the data ends and the trailers follow.
    @inline(__always)
    mutating func readResponse(into destination: UnsafeMutableRawBufferPointer) -> ResponseRead {
        let written = outbound.read(into: destination)
        guard outbound.isEmpty else { return .data(written) }
        if let status = responseStatus { return .lastData(written, trailers: status) }
        if written == 0 {
            dataDeferred = true
            return .deferred
        }
        return .data(written)
    }

    // MARK: - HTTP/2 events

    /// A HEADERS frame of ours with END_STREAM went out: our side of the stream is complete.
    @inline(__always)
    mutating func responseEndSent() -> Action {
        // Submitted any earlier, the reset would make nghttp2 drop the rejection's HEADERS.
        guard phase == .rejected, !requestEnded, !resetSent else { return .none }
        resetSent = true
        return .resetStreamNoError
    }

    /// The HTTP/2 stream closed (answered, reset by either side, or the connection ended).
    @inline(__always)
    mutating func streamClosed() -> Action {
        let callActive = acceptsResponse
        phase = .closed
        return callActive ? .cancelCall(answer: nil) : .none
    }

    // MARK: - Internals

    /// A call exists and has not been answered.
    private var acceptsResponse: Bool { phase == .dispatched && responseStatus == nil }

    @inline(never)
    private mutating func reject(_ status: GRPCStatus, httpStatus: Int = 200) -> Action {
        phase = .rejected
        // Release whatever request bytes were buffered; the stream may linger while the
        // client finishes or the reset goes out.
        deframer = GRPCMessageDeframer(maxMessageSize: 0)
        message = nil
        headerFields = HeaderFieldBytes()
        return .reject(trailersOnly(status, httpStatus: httpStatus))
    }

    @inline(__always)
    private mutating func complete(_ status: GRPCStatus) -> Action {
        responseStatus = status
        if !responseHeadersSubmitted && outbound.isEmpty && status.code != .ok {
            responseHeadersSubmitted = true
            return .sendTrailersOnly(trailersOnly(status, httpStatus: 200))
        }
        return startOrResumeResponse()
    }

    @inline(__always)
    private mutating func startOrResumeResponse() -> Action {
        if !responseHeadersSubmitted {
            responseHeadersSubmitted = true
            return .submitResponseHeaders
        }
        if dataDeferred {
            dataDeferred = false
            return .resumeData
        }
        return .none
    }

    private func trailersOnly(_ status: GRPCStatus, httpStatus: Int) -> TrailersOnlyResponse {
        TrailersOnlyResponse(
            status: status, httpStatus: httpStatus,
            advertiseIdentityEncoding: status.code == .unimplemented && requestNamedEncoding)
    }

    /// `now + nanoseconds`, saturating as `NIODeadline + TimeAmount` does: the longest
    /// expressible `grpc-timeout` (99999999H) must not overflow.
    static func adding(_ nanoseconds: Int64, to now: UInt64) -> UInt64 {
        let (sum, overflow) = Int64(truncatingIfNeeded: now).addingReportingOverflow(nanoseconds)
        if overflow { return nanoseconds > 0 ? UInt64(Int64.max) : 0 }
        return sum < 0 ? 0 : UInt64(sum)
    }
}

extension Duration {
    /// The duration in nanoseconds, saturating at `Int64`'s bounds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
