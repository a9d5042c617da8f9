import Testing

@testable import SwerveTransport
import SwerveStatus

/// The server's gRPC rules for one stream, driven event by event with no socket, no NIO and no
/// nghttp2: each test asserts the actions the connection handler would carry out.
@Suite struct GRPCServerStreamStateMachineTests {
    typealias Machine = GRPCServerStreamStateMachine
    typealias Action = GRPCServerStreamStateMachine.Action

    static let now: UInt64 = 1_000_000_000
    static func clock(_ value: UInt64 = now) -> () -> UInt64 { { value } }
    /// A clock that must not be read: the event has no deadline to compute or check.
    static func unreadClock() -> UInt64 {
        Issue.record("the clock was read although no grpc-timeout asked for it")
        return 0
    }

    static func rejected(_ status: GRPCStatus, http: Int = 200, advertise: Bool = false) -> Action {
        .reject(.init(status: status, httpStatus: http, advertiseIdentityEncoding: advertise))
    }

    static func trailersOnly(_ status: GRPCStatus, advertise: Bool = false) -> Action {
        .sendTrailersOnly(.init(status: status, httpStatus: 200, advertiseIdentityEncoding: advertise))
    }

    /// A machine whose request headers were accepted.
    static func receiving(
        _ extra: [(String, String)] = [], maxMessageSize: Int = 1024, sourceLocation: SourceLocation = #_sourceLocation
    ) -> Machine {
        var machine = Machine(maxMessageSize: maxMessageSize)
        let action = machine.receiveHeaders(StreamEvents.head(StreamEvents.grpcHeaders("/test.Test/Echo", extra)), now: clock())
        #expect(action == .none, sourceLocation: sourceLocation)
        return machine
    }

    /// A machine whose call was dispatched with `message`.
    static func dispatched(
        _ message: [UInt8] = [1, 2, 3], _ extra: [(String, String)] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) -> Machine {
        var machine = receiving(extra, sourceLocation: sourceLocation)
        #expect(StreamEvents.data(&machine, StreamEvents.frame(message)) == .none, sourceLocation: sourceLocation)
        guard case .dispatch = machine.receiveEndOfStream(now: clock()) else {
            Issue.record("not dispatched", sourceLocation: sourceLocation)
            return machine
        }
        return machine
    }

    // MARK: - A good request

    @Test func unaryRequestIsDispatchedAtEndOfStreamWithItsMessageAndMetadata() {
        let fields = StreamEvents.grpcHeaders("/inference.GRPCInferenceService/ModelInfer", [("x-request-id", "abc")])
        var machine = Machine(maxMessageSize: 1024)
        #expect(machine.receiveHeaders(StreamEvents.head(fields), now: Self.unreadClock) == .none)
        #expect(machine.method == "/inference.GRPCInferenceService/ModelInfer")
        #expect(StreamEvents.data(&machine, StreamEvents.frame([9, 8, 7])) == .none)
        let expected = Machine.Request(
            method: "/inference.GRPCInferenceService/ModelInfer", headerFields: StreamEvents.headerFields(fields),
            message: [9, 8, 7], deadline: nil)
        #expect(machine.receiveEndOfStream(now: Self.unreadClock) == .dispatch(expected))
        // The client's trailers or a duplicate END_STREAM change nothing.
        #expect(machine.receiveEndOfStream(now: Self.unreadClock) == .none)
        #expect(StreamEvents.data(&machine, StreamEvents.frame([1])) == .none)
    }

    @Test func metadataKeepsRegularHeadersInArrivalOrderAndNoPseudoHeaders() {
        // A field too long for the one-append path (over 512 bytes) is kept the same way.
        let long = String(repeating: "v", count: 600)
        let head = StreamEvents.head(StreamEvents.grpcHeaders("/a/B", [("authorization", "Bearer x"), ("x-long", long), ("x-b", "2")]))
        #expect(head.path == "/a/B")
        let fields = head.headerFields.fields.map { "\($0.name)=\($0.value)" }
        #expect(fields == ["content-type=application/grpc", "te=trailers", "authorization=Bearer x", "x-long=\(long)", "x-b=2"])
        #expect(head.headerFields.withValue(of: "x-b") { $0.map { Array($0) } } == Array("2".utf8))
    }

    @Test func emptyMessageIsAMessage() {
        var machine = Self.receiving()
        #expect(StreamEvents.data(&machine, StreamEvents.frame([])) == .none)
        guard case .dispatch(let request) = machine.receiveEndOfStream(now: Self.clock()) else {
            Issue.record("not dispatched")
            return
        }
        #expect(request.message == [])
    }

    /// Every split of the framed message into two DATA chunks, and one byte per chunk, with
    /// empty chunks in between: always the same message.
    @Test func requestSplitAnywhereIsTheSameRequest() {
        let message = (0..<40).map { UInt8($0 * 3) }
        let framed = StreamEvents.frame(message)
        var chunkings: [[[UInt8]]] = (0...framed.count).map { [Array(framed[..<$0]), Array(framed[$0...])] }
        chunkings.append(framed.map { [$0] })
        chunkings.append(framed.flatMap { [[], [$0]] })
        for chunks in chunkings {
            var machine = Self.receiving()
            for chunk in chunks {
                #expect(StreamEvents.data(&machine, chunk) == .none)
            }
            guard case .dispatch(let request) = machine.receiveEndOfStream(now: Self.clock()) else {
                Issue.record("not dispatched for chunks \(chunks.map(\.count))")
                continue
            }
            #expect(request.message == message, "chunks \(chunks.map(\.count))")
        }
    }

    // MARK: - Header checks

    @Test func contentTypeMustBeGRPC() {
        for value in ["application/grpc", "application/grpc+proto", "application/grpc;charset=utf-8"] {
            var machine = Machine(maxMessageSize: 1024)
            let fields = StreamEvents.grpcHeaders().filter { $0.0 != "content-type" } + [("content-type", value)]
            #expect(machine.receiveHeaders(StreamEvents.head(fields), now: Self.unreadClock) == .none, "\(value)")
        }
        var json = Machine(maxMessageSize: 1024)
        let jsonFields = StreamEvents.grpcHeaders().filter { $0.0 != "content-type" } + [("content-type", "application/json")]
        #expect(
            json.receiveHeaders(StreamEvents.head(jsonFields), now: Self.unreadClock)
                == Self.rejected(
                    GRPCStatus(.unknown, "unsupported content-type 'application/json': expected application/grpc"), http: 415))
        var missing = Machine(maxMessageSize: 1024)
        let noContentType = StreamEvents.grpcHeaders().filter { $0.0 != "content-type" }
        #expect(
            missing.receiveHeaders(StreamEvents.head(noContentType), now: Self.unreadClock)
                == Self.rejected(GRPCStatus(.unknown, "unsupported content-type '': expected application/grpc"), http: 415))
    }

    @Test func methodMustBePOST() {
        var get = Machine(maxMessageSize: 1024)
        let getFields = StreamEvents.grpcHeaders().map { $0.0 == ":method" ? (":method", "GET") : $0 }
        #expect(
            get.receiveHeaders(StreamEvents.head(getFields), now: Self.unreadClock)
                == Self.rejected(GRPCStatus(.unimplemented, "HTTP method GET is not supported: gRPC uses POST")))
        var missing = Machine(maxMessageSize: 1024)
        let noMethod = StreamEvents.grpcHeaders().filter { $0.0 != ":method" }
        #expect(
            missing.receiveHeaders(StreamEvents.head(noMethod), now: Self.unreadClock)
                == Self.rejected(GRPCStatus(.unimplemented, "HTTP method  is not supported: gRPC uses POST")))
    }

    @Test func contentTypeIsCheckedBeforeTheMethod() {
        var machine = Machine(maxMessageSize: 1024)
        let fields = [(":method", "GET"), (":path", "/x/Y"), ("content-type", "text/html")]
        guard case .reject(let response) = machine.receiveHeaders(StreamEvents.head(fields), now: Self.unreadClock) else {
            Issue.record("not rejected")
            return
        }
        #expect(response.status.code == .unknown)
        #expect(response.httpStatus == 415)
    }

    @Test func onlyIdentityEncodingIsAcceptedAndTheRefusalSaysSo() {
        var identity = Machine(maxMessageSize: 1024)
        #expect(
            identity.receiveHeaders(StreamEvents.head(StreamEvents.grpcHeaders("/a/B", [("grpc-encoding", "identity")])), now: Self.unreadClock)
                == .none)
        var gzip = Machine(maxMessageSize: 1024)
        #expect(
            gzip.receiveHeaders(StreamEvents.head(StreamEvents.grpcHeaders("/a/B", [("grpc-encoding", "gzip")])), now: Self.unreadClock)
                == Self.rejected(GRPCStatus(.unimplemented, "grpc-encoding 'gzip' is not supported: only identity"), advertise: true))
        // A request that named an encoding and is refused for another reason with UNIMPLEMENTED
        // also learns what is accepted; other codes do not carry it.
        var get = Machine(maxMessageSize: 1024)
        let getFields = StreamEvents.grpcHeaders("/a/B", [("grpc-encoding", "gzip")]).map { $0.0 == ":method" ? (":method", "PUT") : $0 }
        #expect(
            get.receiveHeaders(StreamEvents.head(getFields), now: Self.unreadClock)
                == Self.rejected(GRPCStatus(.unimplemented, "HTTP method PUT is not supported: gRPC uses POST"), advertise: true))
        var badTimeout = Machine(maxMessageSize: 1024)
        let badFields = StreamEvents.grpcHeaders("/a/B", [("grpc-encoding", "identity"), ("grpc-timeout", "x")])
        #expect(
            badTimeout.receiveHeaders(StreamEvents.head(badFields), now: Self.unreadClock)
                == Self.rejected(GRPCStatus(.invalidArgument, "invalid grpc-timeout 'x'")))
    }

    @Test(arguments: ["abc", "1", "", "-5S", "123456789S", "5s", "1.5S"])
    func invalidTimeoutIsInvalidArgument(value: String) {
        var machine = Machine(maxMessageSize: 1024)
        #expect(
            machine.receiveHeaders(StreamEvents.head(StreamEvents.grpcHeaders("/a/B", [("grpc-timeout", value)])), now: Self.unreadClock)
                == Self.rejected(GRPCStatus(.invalidArgument, "invalid grpc-timeout '\(value)'")))
    }

    @Test func timeoutBecomesADeadlineFromTheArrivalOfTheHeaders() {
        for (value, nanoseconds) in [("150m", 150_000_000), ("1n", 1), ("2S", 2_000_000_000), ("0n", 0)] as [(String, UInt64)] {
            var machine = Self.receiving([("grpc-timeout", value)])
            _ = StreamEvents.data(&machine, StreamEvents.frame([1]))
            guard case .dispatch(let request) = machine.receiveEndOfStream(now: Self.clock(Self.now - 1)) else {
                Issue.record("\(value): not dispatched")
                continue
            }
            #expect(request.deadline == Self.now + nanoseconds, "\(value)")
        }
    }

    @Test func longestTimeoutSaturatesInsteadOfOverflowing() {
        var machine = Machine(maxMessageSize: 1024)
        #expect(
            machine.receiveHeaders(
                StreamEvents.head(StreamEvents.grpcHeaders("/a/B", [("grpc-timeout", "99999999H")])), now: Self.clock(UInt64(Int64.max) - 5))
                == .none)
        _ = StreamEvents.data(&machine, StreamEvents.frame([]))
        guard case .dispatch(let request) = machine.receiveEndOfStream(now: Self.clock()) else {
            Issue.record("not dispatched")
            return
        }
        #expect(request.deadline == UInt64(Int64.max))
        #expect(Machine.adding(.max, to: 10) == UInt64(Int64.max))
        #expect(Machine.adding(-20, to: 10) == 0)
        #expect(Machine.adding(5, to: 10) == 15)
    }

    // MARK: - Request body problems

    @Test func secondMessageIsClientStreamingAndRefused() {
        var machine = Self.receiving()
        #expect(
            StreamEvents.data(&machine, StreamEvents.frame([1]) + StreamEvents.frame([2]))
                == Self.rejected(GRPCStatus(.unimplemented, "client streaming is not supported: more than one request message")))
        // In separate DATA frames too.
        var split = Self.receiving()
        #expect(StreamEvents.data(&split, StreamEvents.frame([1])) == .none)
        guard case .reject(let response) = StreamEvents.data(&split, StreamEvents.frame([2])) else {
            Issue.record("not rejected")
            return
        }
        #expect(response.status.code == .unimplemented)
        // Once rejected, the rest of the stream is ignored.
        #expect(StreamEvents.data(&split, StreamEvents.frame([3])) == .none)
        #expect(split.receiveEndOfStream(now: Self.clock()) == .none)
    }

    @Test func partialMessageAtEndOfStreamIsInternal() {
        for bytes in [[0, 0, 0], StreamEvents.frame([1, 2, 3, 4])[..<7].map { $0 }, StreamEvents.frame([1]) + [0]] {
            var machine = Self.receiving()
            #expect(StreamEvents.data(&machine, bytes) == .none)
            #expect(
                machine.receiveEndOfStream(now: Self.clock())
                    == Self.rejected(GRPCStatus(.internal, "request stream ended in the middle of a message")), "\(bytes)")
        }
    }

    @Test func noMessageIsInvalidArgument() {
        // END_STREAM on the HEADERS frame itself, and after empty DATA frames.
        var headersOnly = Self.receiving()
        #expect(headersOnly.receiveEndOfStream(now: Self.clock()) == Self.rejected(GRPCStatus(.invalidArgument, "no request message")))
        var emptyData = Self.receiving()
        #expect(StreamEvents.data(&emptyData, []) == .none)
        #expect(emptyData.receiveEndOfStream(now: Self.clock()) == Self.rejected(GRPCStatus(.invalidArgument, "no request message")))
    }

    @Test func oversizeMessageIsResourceExhaustedBeforeItsBodyArrives() {
        var machine = Self.receiving(maxMessageSize: 10)
        #expect(
            StreamEvents.data(&machine, StreamEvents.frame([], declaredLength: 11))
                == Self.rejected(
                    GRPCStatus(.resourceExhausted, "message of 11 bytes exceeds the maximum receive size of 10 bytes")))
        var exact = Self.receiving(maxMessageSize: 10)
        #expect(StreamEvents.data(&exact, StreamEvents.frame(Array(repeating: 1, count: 10))) == .none)
        guard case .dispatch = exact.receiveEndOfStream(now: Self.clock()) else {
            Issue.record("a message of exactly the limit was not dispatched")
            return
        }
    }

    @Test func compressedMessageWithoutEncodingIsInternal() {
        var machine = Self.receiving()
        #expect(
            StreamEvents.data(&machine, StreamEvents.frame([1], compressed: true))
                == Self.rejected(
                    GRPCStatus(.internal, "compressed message received but grpc-encoding is identity (no compression negotiated)")))
    }

    @Test func deadlinePassedWhileTheRequestArrivedIsAnsweredWithoutDispatch() {
        for late in [Self.now + 100, Self.now + 101, Self.now + 1_000_000] {
            var machine = Self.receiving([("grpc-timeout", "100n")])
            _ = StreamEvents.data(&machine, StreamEvents.frame([1]))
            #expect(machine.receiveEndOfStream(now: Self.clock(late)) == Self.rejected(.deadlineExceeded), "at \(late)")
        }
        var inTime = Self.receiving([("grpc-timeout", "100n")])
        _ = StreamEvents.data(&inTime, StreamEvents.frame([1]))
        guard case .dispatch(let request) = inTime.receiveEndOfStream(now: Self.clock(Self.now + 99)) else {
            Issue.record("not dispatched in time")
            return
        }
        #expect(request.deadline == Self.now + 100)
    }

    @Test func deadlineStatusIsTheOneMessage() {
        #expect(GRPCStatus.deadlineExceeded == GRPCStatus(.deadlineExceeded, "deadline exceeded"))
    }

    // MARK: - RST_STREAM(NO_ERROR) after a rejection

    @Test func rejectionWhileTheClientUploadsIsFollowedByAResetOnceTheHeadersAreOut() {
        var machine = Self.receiving(maxMessageSize: 4)
        guard case .reject = StreamEvents.data(&machine, StreamEvents.frame([], declaredLength: 1000)) else {
            Issue.record("not rejected")
            return
        }
        #expect(machine.responseEndSent() == .resetStreamNoError)
        #expect(machine.responseEndSent() == .none, "one reset is enough")
        #expect(machine.streamClosed() == .none)
    }

    @Test func rejectionAfterTheClientFinishedNeedsNoReset() {
        var machine = Self.receiving()
        guard case .reject = machine.receiveEndOfStream(now: Self.clock()) else {
            Issue.record("not rejected")
            return
        }
        #expect(machine.responseEndSent() == .none)
        // Rejected at the headers, END_STREAM on the same HEADERS frame: nothing to stop either.
        var getOnly = Machine(maxMessageSize: 1024)
        let fields = StreamEvents.grpcHeaders().map { $0.0 == ":method" ? (":method", "GET") : $0 }
        guard case .reject = getOnly.receiveHeaders(StreamEvents.head(fields), now: Self.unreadClock) else {
            Issue.record("not rejected")
            return
        }
        #expect(getOnly.receiveEndOfStream(now: Self.unreadClock) == .none)
        #expect(getOnly.responseEndSent() == .none)
    }

    @Test func answeredCallsAreNeverReset() {
        var machine = Self.dispatched()
        #expect(machine.finish(GRPCStatus(.notFound, "x")) == Self.trailersOnly(GRPCStatus(.notFound, "x")))
        #expect(machine.responseEndSent() == .none)
    }

    // MARK: - Responses

    @Test func respondSubmitsHeadersThenDataThenOKTrailers() {
        var machine = Self.dispatched()
        #expect(machine.respond([4, 5]) == .submitResponseHeaders)
        let (read, bytes) = StreamEvents.read(&machine)
        #expect(read == .lastData(7, trailers: .ok))
        #expect(bytes == StreamEvents.frame([4, 5]))
        // The first answer wins; later ones are ignored.
        #expect(machine.respond([6]) == .none)
        #expect(machine.finish(GRPCStatus(.internal, "late")) == .none)
        #expect(machine.sendMessage([7]) == .none)
        #expect(machine.deadlinePassed() == .none)
        #expect(machine.streamClosed() == .none)
    }

    @Test func responseLargerThanTheWindowIsReadInPieces() {
        var machine = Self.dispatched()
        let message = (0..<100).map { UInt8($0) }
        #expect(machine.respond(message) == .submitResponseHeaders)
        var out: [UInt8] = []
        for _ in 0..<10 {
            let (read, bytes) = StreamEvents.read(&machine, window: 30)
            out += bytes
            if case .lastData(_, let trailers) = read {
                #expect(trailers == .ok)
                break
            }
            #expect(read == .data(30))
        }
        #expect(out == StreamEvents.frame(message))
    }

    @Test func serverStreamingDefersWhenDryAndResumesOnTheNextMessage() {
        var machine = Self.dispatched()
        #expect(machine.sendMessage([1]) == .submitResponseHeaders)
        #expect(machine.sendMessage([2]) == .none, "headers are submitted and nghttp2 is still reading")
        #expect(StreamEvents.read(&machine) == (.data(12), StreamEvents.frame([1]) + StreamEvents.frame([2])))
        #expect(StreamEvents.read(&machine).0 == .deferred)
        #expect(machine.sendMessage([3]) == .resumeData)
        #expect(StreamEvents.read(&machine) == (.data(6), StreamEvents.frame([3])))
        #expect(StreamEvents.read(&machine).0 == .deferred)
        #expect(machine.finish(.ok) == .resumeData)
        #expect(StreamEvents.read(&machine) == (.lastData(0, trailers: .ok), []))
    }

    @Test func finishWhileDataIsStillQueuedEndsAfterIt() {
        var machine = Self.dispatched()
        #expect(machine.sendMessage([1, 1]) == .submitResponseHeaders)
        #expect(machine.finish(GRPCStatus(.aborted, "midway")) == .none)
        #expect(StreamEvents.read(&machine) == (.lastData(7, trailers: GRPCStatus(.aborted, "midway")), StreamEvents.frame([1, 1])))
    }

    @Test func errorBeforeAnyMessageIsTrailersOnly() {
        var machine = Self.dispatched()
        #expect(machine.finish(GRPCStatus(.notFound, "no model")) == Self.trailersOnly(GRPCStatus(.notFound, "no model")))
        #expect(machine.sendMessage([1]) == .none)
        #expect(machine.respond([1]) == .none)
        #expect(machine.deadlinePassed() == .none)
    }

    @Test func unimplementedAnswerAdvertisesIdentityOnlyWhenTheRequestNamedAnEncoding() {
        var plain = Self.dispatched()
        #expect(plain.finish(GRPCStatus(.unimplemented, "unknown method")) == Self.trailersOnly(GRPCStatus(.unimplemented, "unknown method")))
        var named = Self.dispatched([1], [("grpc-encoding", "identity")])
        #expect(
            named.finish(GRPCStatus(.unimplemented, "unknown method"))
                == Self.trailersOnly(GRPCStatus(.unimplemented, "unknown method"), advertise: true))
    }

    @Test func okWithNoMessageStillSendsHeadersAndTrailers() {
        var machine = Self.dispatched()
        #expect(machine.finish(.ok) == .submitResponseHeaders)
        #expect(StreamEvents.read(&machine) == (.lastData(0, trailers: .ok), []))
    }

    @Test func responseEventsBeforeDispatchAreIgnored() {
        var machine = Self.receiving()
        #expect(machine.sendMessage([1]) == .none)
        #expect(machine.finish(.ok) == .none)
        #expect(machine.respond([1]) == .none)
        #expect(machine.deadlinePassed() == .none)
        #expect(machine.streamClosed() == .none)
    }

    // MARK: - Deadline and cancellation after dispatch

    @Test func deadlinePassingCancelsTheCallAndAnswersDeadlineExceeded() {
        var machine = Self.dispatched([1], [("grpc-timeout", "1S")])
        #expect(machine.deadlinePassed() == .cancelCall(answer: .deadlineExceeded))
        // The handler finishes the stream with the answer once the cancellation won.
        #expect(machine.finish(.deadlineExceeded) == Self.trailersOnly(.deadlineExceeded))
        #expect(machine.deadlinePassed() == .none)
        #expect(machine.respond([9]) == .none, "the call's late answer is dropped")
        #expect(machine.streamClosed() == .none)
    }

    @Test func deadlineDuringAStreamingResponseEndsItAfterWhatWasSent() {
        var machine = Self.dispatched([1], [("grpc-timeout", "1S")])
        #expect(machine.sendMessage([5]) == .submitResponseHeaders)
        #expect(StreamEvents.read(&machine).0 == .data(6))
        #expect(StreamEvents.read(&machine).0 == .deferred)
        #expect(machine.deadlinePassed() == .cancelCall(answer: .deadlineExceeded))
        #expect(machine.finish(.deadlineExceeded) == .resumeData)
        #expect(StreamEvents.read(&machine) == (.lastData(0, trailers: .deadlineExceeded), []))
    }

    @Test func streamClosingUnderAnActiveCallCancelsIt() {
        var machine = Self.dispatched()
        #expect(machine.sendMessage([1]) == .submitResponseHeaders)
        #expect(machine.streamClosed() == .cancelCall(answer: nil))
        #expect(machine.sendMessage([2]) == .none)
        #expect(machine.finish(.ok) == .none)
        #expect(machine.deadlinePassed() == .none)
        #expect(machine.streamClosed() == .none)
    }

    @Test func streamClosingBeforeTheRequestEndedHasNoCallToCancel() {
        var machine = Self.receiving()
        _ = StreamEvents.data(&machine, [0, 0])
        #expect(machine.streamClosed() == .none)
        #expect(StreamEvents.data(&machine, [0, 0, 1, 7]) == .none)
        #expect(machine.receiveEndOfStream(now: Self.clock()) == .none)
    }
}
