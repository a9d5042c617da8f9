import Logging
import NIOCore
import NIOEmbedded
import Testing
#if canImport(Glibc)
import Glibc
#endif

@testable import SwerveTransport
import SwerveStatus

/// Defects found in review of the connection limits, each through a server connection handler
/// in an embedded channel fed hand-built HTTP/2 bytes (`RawHTTP2`).
@Suite struct ConnectionReviewTests {
    typealias Frame = NGHTTP2SessionTests.Frame

    /// A server connection handler in an embedded channel, and what it wrote.
    final class RawServer {
        let observations = TestObservations()
        let handler: GRPCServerConnectionHandler
        let channel: EmbeddedChannel
        var written: [UInt8] = []

        init(configuration: GRPCServerConfiguration = GRPCServerConfiguration(), budget: GRPCRequestMemoryBudget? = nil) throws {
            handler = GRPCServerConnectionHandler(
                configuration: configuration, callHandler: TestCallHandler(observations: observations),
                logger: Logger(label: "test"), requestBudget: budget)
            channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func send(_ bytes: [UInt8]) throws {
            if channel.isActive { try channel.writeInbound(RawHTTP2.buffer(bytes)) }
            drain()
        }

        func drain() {
            channel.embeddedEventLoop.run()
            while let out = try? channel.readOutbound(as: ByteBuffer.self) { written += out.readableBytesView }
        }

        /// Lets the watchdog tick in real time (it reads the real clock; the embedded loop's
        /// timers run as its time is advanced by hand) until `done`, for at most `seconds`.
        func waitTicks(upTo seconds: Double, until done: () -> Bool) {
            let start = NIODeadline.now()
            while !done() && NIODeadline.now() - start < .milliseconds(Int64(seconds * 1000)) {
                usleep(20_000)
                channel.embeddedEventLoop.advanceTime(by: .milliseconds(20))
                drain()
            }
        }

        /// The frames written so far (after the server's preface, which has none to skip).
        var frames: [Frame] { NGHTTP2SessionTests.frames(written) }
    }

    // MARK: 1. A read that ends the connection after completing requests

    @Test func aReadEndingInAFloodAfterCompleteRequestsLeaksNothing() throws {
        let budget = GRPCRequestMemoryBudget(limit: 1 << 30)
        weak var weakHandler: GRPCServerConnectionHandler?
        let observations: TestObservations
        do {
            let server = try RawServer(budget: budget)
            weakHandler = server.handler
            observations = server.observations
            // Two complete requests, then more PINGs than nghttp2 queues ACKs for (its outbound
            // flood limit, NGHTTP2_ERR_FLOODED), all in one read: the requests complete inside
            // the same mem_recv that fails.
            try server.send(
                RawHTTP2.preface + RawHTTP2.settings()
                    + RawHTTP2.request(stream: 1, TestMethod.hold, [UInt8](repeating: 1, count: 10_000))
                    + RawHTTP2.request(stream: 3, TestMethod.hold, [UInt8](repeating: 2, count: 10_000))
                    + (0..<1100).flatMap { _ in RawHTTP2.frame(0x6, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8]) })
            #expect(server.frames.contains { $0.type == Frame.goaway && $0.errorCode == 11 }, "GOAWAY(ENHANCE_YOUR_CALM)")
            #expect(server.handler.readyCallCount == 0, "the completed calls are dropped, not kept")
            #expect(budget.usedBytes == 0)
            _ = try? server.channel.finish()
        }
        #expect(observations.heldCalls.isEmpty, "nothing is dispatched on a connection that ended")
        #expect(weakHandler == nil, "handler, session and messages are freed with the channel")
    }

    // MARK: 2. Answered streams whose response the client's window never lets through

    @Test func answeredCallsReleaseTheirRequestBytesAndBlockedResponsesAreReset() throws {
        var configuration = GRPCServerConfiguration()
        configuration.responseWindowTimeout = .milliseconds(300)
        let budget = GRPCRequestMemoryBudget(limit: 1 << 30)
        let server = try RawServer(configuration: configuration, budget: budget)
        // SETTINGS_INITIAL_WINDOW_SIZE = 0: no response DATA can ever go.
        try server.send(
            RawHTTP2.preface + RawHTTP2.settings([(0x4, 0)]) + RawHTTP2.settingsAck
                + RawHTTP2.request(stream: 1, TestMethod.echo, [UInt8](repeating: 1, count: 50_000))
                + RawHTTP2.request(stream: 3, TestMethod.echo, [UInt8](repeating: 3, count: 50_000)))
        #expect(server.handler.responseBytesQueued == 2 * 50_005, "both answered, both waiting for window")
        #expect(server.handler.requestBytesHeld == 0, "answered: the request messages are no longer charged")
        #expect(budget.usedBytes == 0)

        server.waitTicks(upTo: 10) { server.frames.filter { $0.type == Frame.rstStream }.count >= 2 }
        let resets = server.frames.filter { $0.type == Frame.rstStream }
        #expect(Set(resets.map(\.streamID)) == [1, 3])
        #expect(resets.allSatisfy { $0.payload == [0, 0, 0, 11] }, "RST_STREAM(ENHANCE_YOUR_CALM)")
        #expect(server.handler.responseBytesQueued == 0, "the queued responses are dropped with their streams")
        #expect(server.channel.isActive, "the connection itself goes on")
    }

    // MARK: 3. The request header list

    @Test func theHeaderListLimitIsAdvertised() throws {
        let server = try RawServer()
        try server.send(RawHTTP2.preface + RawHTTP2.settings())
        let settings = try #require(server.frames.first { $0.type == Frame.settings && $0.flags == 0 })
        let entries = stride(from: 0, to: settings.payload.count, by: 6).map { i in
            (id: Int(settings.payload[i]) << 8 | Int(settings.payload[i + 1]),
             value: settings.payload[i + 2..<i + 6].reduce(0) { $0 << 8 | Int($1) })
        }
        #expect(entries.contains { $0.id == 0x6 && $0.value == 16 << 10 }, "SETTINGS_MAX_HEADER_LIST_SIZE = 16 KiB")
    }

    @Test func anHPACKAmplifiedHeaderListIsRefusedWithoutBeingKept() throws {
        let server = try RawServer()
        // One 4,000-byte field enters the dynamic table (index 62); 3,000 one-byte references
        // to it make a 7 KiB frame that names 12 MB of headers.
        let block = RawHTTP2.requestBlock(TestMethod.hold)
            + RawHTTP2.indexedLiteral("x-pad", [UInt8](repeating: 0x61, count: 4000))
            + [UInt8](repeating: 0xBE, count: 3000)
        try server.send(
            RawHTTP2.preface + RawHTTP2.settings() + RawHTTP2.settingsAck
                + RawHTTP2.headers(stream: 1, block) + RawHTTP2.data(stream: 1, RawHTTP2.message([1]), endStream: true)
                + RawHTTP2.request(stream: 3, TestMethod.echo, [7]))
        let answers = server.frames.filter { $0.streamID == 1 && $0.type == Frame.headers }
        #expect(answers.count == 1 && answers.first.map { $0.flags & 0x1 != 0 } == true, "a trailers-only answer")
        #expect(server.observations.heldCalls.isEmpty, "never dispatched")
        #expect(server.handler.requestBytesHeld == 0)
        #expect(server.channel.isActive, "the connection goes on")
        #expect(server.frames.contains { $0.streamID == 3 && $0.type == 0x0 }, "the next request is answered")
    }

    // MARK: 4. A client that takes its responses slowly is held back, not cut off

    @Test func aSlowButReadingClientWithManyLargeResponsesGetsThemAll() throws {
        var configuration = GRPCServerConfiguration()
        configuration.maxConnectionOutboundBytes = 4 << 20
        let server = try RawServer(configuration: configuration)
        let calls: [UInt32] = [1, 3, 5, 7]
        // Stream windows of 256 KiB, a connection window of 16 MiB; four 3 MiB echoes (12 MiB
        // of responses, three times the cap) sent at once (within the server's windows).
        var bytes = RawHTTP2.preface + RawHTTP2.settings([(0x4, 256 << 10)]) + RawHTTP2.settingsAck
        bytes += RawHTTP2.frame(0x8, stream: 0, [0x00, 0xFF, 0x00, 0x00])
        for id in calls { bytes += RawHTTP2.request(stream: id, TestMethod.echo, bigMessage(UInt8(id))) }
        try server.send(bytes)

        // The client reads what arrives and grants as much window again, round after round.
        var parsed = 0
        var received: [UInt32: Int] = [:]
        var ended = Set<UInt32>()
        var mostQueued = 0
        for _ in 0..<10_000 where ended.count < calls.count && server.channel.isActive {
            mostQueued = max(mostQueued, server.handler.responseBytesQueued)
            let frames = NGHTTP2SessionTests.frames(Array(server.written[parsed...]))
            parsed += frames.reduce(0) { $0 + 9 + $1.payload.count }
            var updates: [UInt8] = []
            for frame in frames {
                if frame.type == 0x0 && !frame.payload.isEmpty {
                    received[frame.streamID, default: 0] += frame.payload.count
                    let n = UInt32(frame.payload.count)
                    let increment = [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
                    updates += RawHTTP2.frame(0x8, stream: frame.streamID, increment) + RawHTTP2.frame(0x8, stream: 0, increment)
                }
                if frame.type == Frame.headers && frame.flags & 0x1 != 0 { ended.insert(frame.streamID) }
                #expect(frame.type != Frame.goaway, "no GOAWAY for a client that takes its responses")
            }
            if updates.isEmpty { server.drain() } else { try server.send(updates) }
        }
        #expect(ended == Set(calls), "every call completes")
        #expect(calls.allSatisfy { received[$0] == (3 << 20) + 5 }, "every response whole")
        // New calls wait while more than half the cap is queued: at most that plus one response.
        #expect(mostQueued <= (2 << 20) + (3 << 20) + 5, "queued responses: \(mostQueued)")
        #expect(server.channel.isActive)
    }
}

@Suite struct HeaderListLimitCallTests {
    @Test func requestMetadataPastTheLimitGetsResourceExhaustedNamingTheFlag() async throws {
        var configuration = GRPCServerConfiguration()
        configuration.maxHeaderListBytes = 4096
        let connection = try NGHTTP2SessionTests.Connection(configuration: configuration)
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        connection.clientHandler.startCall(
            method: TestMethod.echo, request: [1], timeout: nil,
            metadata: [("x-big", String(repeating: "b", count: 5000))], responder: .streaming(continuation))
        let fine = connection.call(TestMethod.echo, [2])
        try connection.pump()
        let status = await NGHTTP2SessionTests.collect(stream).status
        #expect(status.code == .resourceExhausted)
        #expect(status.message.contains("4 KiB") && status.message.contains("max-header-list-bytes"))
        #expect(await NGHTTP2SessionTests.collect(fine).messages == [[2]])
    }
}

@Suite struct ServerBudgetRaceTests {
    /// A charge that does not fit must not make one that does fit fail: with 800 of 1000
    /// held, two tasks charging (and releasing) 100 always fit; a third keeps trying 300,
    /// which never does. An add-then-undo would let the 300 show in the total for a moment.
    @Test func aChargeThatDoesNotFitNeverCrowdsOutOneThatDoes() async {
        let budget = GRPCRequestMemoryBudget(limit: 1000)
        #expect(budget.tryCharge(800))
        let results = await withTaskGroup(of: (size: Int, refused: Int).self) { group in
            for size in [100, 100, 300] {
                group.addTask {
                    var refused = 0
                    for _ in 0..<200_000 {
                        if budget.tryCharge(size) { budget.release(size) } else { refused += 1 }
                    }
                    return (size, refused)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0.size == 100 }.map(\.refused) == [0, 0], "charges that fit were refused: \(results)")
        #expect(results.first { $0.size == 300 }?.refused == 200_000)
        #expect(budget.usedBytes == 800)
    }
}

@Suite struct RequestBodyDurationTests {
    private static func seconds(_ s: Double) -> UInt64 { UInt64(s * 1e9) }

    @Test func trickledBytesResetTheStallClockButNotTheTotal() {
        var clock = StreamStallClock()
        let limit = Self.seconds(30)
        for t in stride(from: 0.0, through: 290, by: 29) {
            clock.progressed = true  // one byte every 29 s
            let stalled = clock.tick(now: Self.seconds(t), limit: limit, paused: false)
            #expect(!stalled, "never stalled")
        }
        #expect(clock.activeNanos == Self.seconds(290))
    }

    @Test func pausedTicksAreNotCounted() {
        var clock = StreamStallClock()
        _ = clock.tick(now: 0, limit: .max, paused: false)
        _ = clock.tick(now: Self.seconds(10), limit: .max, paused: false)
        _ = clock.tick(now: Self.seconds(50), limit: .max, paused: true)
        _ = clock.tick(now: Self.seconds(55), limit: .max, paused: false)
        #expect(clock.activeNanos == Self.seconds(15))
    }

    @Test func aTrickledBodyIsAnsweredDeadlineExceededAfterTheTotal() throws {
        var configuration = GRPCServerConfiguration()
        configuration.requestBodyTimeout = .seconds(30)
        configuration.maxRequestBodyDuration = .milliseconds(400)
        let server = try ConnectionReviewTests.RawServer(configuration: configuration)
        try server.send(
            RawHTTP2.preface + RawHTTP2.settings() + RawHTTP2.settingsAck
                + RawHTTP2.headers(stream: 1, RawHTTP2.requestBlock(TestMethod.echo)) + RawHTTP2.data(stream: 1, [0, 0, 0, 0, 100]))
        // One byte every 60 ms: far more often than the 30 s stall limit.
        var sent = 0
        server.waitTicks(upTo: 10) {
            sent += 1
            if sent % 3 == 0 { try? server.send(RawHTTP2.data(stream: 1, [7])) }
            return server.frames.contains { $0.streamID == 1 && $0.type == ConnectionReviewTests.Frame.headers }
        }
        let answer = server.frames.filter { $0.streamID == 1 && $0.type == ConnectionReviewTests.Frame.headers }
        #expect(answer.count == 1 && answer.first.map { $0.flags & 0x1 != 0 } == true, "answered trailers-only")
        #expect(server.handler.requestBytesHeld == 0)
        #expect(server.channel.isActive)
    }
}

/// Makes the channel unwritable on the next write, as a large flush does on a real socket.
private final class FillsTheChannel: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var armed = false
    var readsSeen = 0
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if armed, let channel = context.channel as? EmbeddedChannel { channel.isWritable = false }
        context.write(data, promise: promise)
    }
    func read(context: ChannelHandlerContext) {
        readsSeen += 1
        context.read()
    }
}

@Suite struct HeldReadTests {
    @Test func theHeldReadIsIssuedEvenWhenTheFlushFillsTheChannelAgain() throws {
        let server = try ConnectionReviewTests.RawServer()
        let filler = FillsTheChannel()
        try server.channel.pipeline.syncOperations.addHandler(filler, position: .first)
        try server.send(RawHTTP2.preface + RawHTTP2.settings() + RawHTTP2.settingsAck)

        server.channel.isWritable = false
        server.channel.pipeline.fireChannelWritabilityChanged()
        server.channel.pipeline.read()
        #expect(filler.readsSeen == 0, "held while not writable")
        // A PING whose ACK waits in nghttp2 until the channel is writable.
        try server.send(RawHTTP2.frame(0x6, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8]))

        filler.armed = true
        server.channel.isWritable = true
        server.channel.pipeline.fireChannelWritabilityChanged()
        server.drain()
        #expect(server.frames.contains { $0.type == 0x6 && $0.flags == 0x1 }, "the ACK went out")
        #expect(!server.channel.isWritable, "and filled the channel again")
        #expect(filler.readsSeen == 1, "the held read was passed on all the same")
    }
}

@Suite struct ConfigurationConsistencyTests {
    @Test func theDefaultsAreConsistent() {
        #expect(GRPCServerConfiguration().inconsistency == nil)
    }

    @Test func aMessageSizeTheBudgetsCannotHoldIsNamedWithBothFlags() {
        var configuration = GRPCServerConfiguration()
        configuration.maxReceiveMessageSize = 64 << 20
        let problem = configuration.inconsistency ?? ""
        #expect(problem.contains("--max-receive-message-size") && problem.contains("--max-connection-request-bytes"), "\(problem)")
        configuration.maxConnectionRequestBytes = 2 << 30
        configuration.maxServerRequestBytes = 32 << 20
        #expect(configuration.inconsistency?.contains("--max-server-request-bytes") == true)
        configuration.maxServerRequestBytes = 2 << 30
        #expect(configuration.inconsistency == nil)
    }
}

@Suite struct OutboundCeilingTests {
    /// A client that takes response bytes is not cut off at the cap, but is past twice the cap:
    /// calls already running (here: held calls answered at once) cannot grow its queue without bound.
    @Test func aReadingClientIsCutOffPastTwiceTheCap() throws {
        var configuration = GRPCServerConfiguration()
        configuration.maxConnectionOutboundBytes = 4 << 20
        let server = try ConnectionReviewTests.RawServer(configuration: configuration)
        let ids: [UInt32] = [1, 3, 5, 7]
        var bytes = RawHTTP2.preface + RawHTTP2.settings([(0x4, 64 << 10)]) + RawHTTP2.settingsAck
        for id in ids { bytes += RawHTTP2.request(stream: id, TestMethod.hold, [UInt8(id)]) }
        try server.send(bytes)
        let calls = server.observations.heldCalls
        #expect(calls.count == 4, "nothing queued yet: all four dispatched")
        calls[0].respond(bigMessage(1))  // 3 MiB: nghttp2 takes 64 KiB of it at once
        server.drain()
        calls[1].respond(bigMessage(2))  // 6 MiB queued, past the cap: the client took bytes
        server.drain()
        #expect(server.channel.isActive, "past the cap, but the client takes its responses")
        calls[2].respond(bigMessage(3))  // 9 MiB: past twice the cap
        server.drain()
        let goaways = server.frames.filter { $0.type == ConnectionReviewTests.Frame.goaway }
        #expect(goaways.map(\.errorCode) == [11], "GOAWAY(ENHANCE_YOUR_CALM)")
        #expect(server.handler.responseBytesQueued == 0)
        withExtendedLifetime(calls) {}
    }
}
