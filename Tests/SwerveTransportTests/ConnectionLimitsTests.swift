import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SwerveTransport
import SwerveStatus

/// The limits of one server connection: the request-body budgets, the watchdog's timing rules,
/// the accounting of queued responses, and (through embedded channels) backpressure, the
/// outbound cap and the budgets as the connection handler carries them out.

private func seconds(_ s: Double) -> UInt64 { UInt64(s * 1e9) }

@Suite struct RequestBudgetTests {
    @Test func serverBudgetChargesUpToItsLimitAndNoFurther() {
        let budget = GRPCRequestMemoryBudget(limit: 100)
        #expect(budget.tryCharge(60))
        #expect(!budget.tryCharge(41), "61 + 41 > 100")
        #expect(budget.usedBytes == 60, "a refused charge leaves nothing charged")
        #expect(budget.tryCharge(40))
        #expect(budget.usedBytes == 100)
        budget.release(100)
        #expect(budget.usedBytes == 0)
    }

    @Test func connectionBudgetRefusesPastItsOwnLimitWithoutChargingTheServer() {
        let server = GRPCRequestMemoryBudget(limit: 1000)
        var connection = ConnectionRequestBudget(connectionLimit: 100, server: server)
        #expect(connection.charge(70) == nil)
        #expect(connection.charge(31) == .connection(limit: 100))
        #expect(connection.used == 70)
        #expect(server.usedBytes == 70)
        connection.release(70)
        #expect(connection.used == 0 && server.usedBytes == 0)
    }

    @Test func connectionsShareTheServerBudget() {
        let server = GRPCRequestMemoryBudget(limit: 150)
        var a = ConnectionRequestBudget(connectionLimit: 100, server: server)
        var b = ConnectionRequestBudget(connectionLimit: 100, server: server)
        #expect(a.charge(100) == nil)
        #expect(b.charge(60) == .server(limit: 150), "within b's own limit, past the server's")
        #expect(b.used == 0, "nothing charged to b")
        #expect(b.charge(50) == nil)
        a.release(100)
        #expect(b.charge(50) == nil, "a's release made room")
        #expect(server.usedBytes == 100)
    }

    @Test func refusalsSayWhichBudgetAndHowLarge() {
        let connection = ConnectionRequestBudget.status(for: .connection(limit: 64 << 20))
        #expect(connection.code == .resourceExhausted)
        #expect(connection.message.contains("memory budget of 64 MiB"))
        #expect(connection.message.contains("max-connection-request-bytes"))
        let server = ConnectionRequestBudget.status(for: .server(limit: 3 << 29))
        #expect(server.code == .resourceExhausted)
        #expect(server.message.contains("1.5 GiB") && server.message.contains("max-server-request-bytes"))
    }

    @Test func sizesAndDurationsReadAsAPersonWouldWriteThem() {
        #expect(describeBytes(1000) == "1000 bytes")
        #expect(describeBytes(4 << 20) == "4 MiB")
        #expect(describeBytes(1 << 30) == "1 GiB")
        #expect(describeBytes((5 << 20) / 2) == "2.5 MiB")
        #expect(describeDuration(seconds(10)) == "10 s")
        #expect(describeDuration(seconds(1.5)) == "1.5 s")
        #expect(describeDuration(seconds(0.25)) == "250 ms")
    }
}

@Suite struct ConnectionWatchdogTests {
    typealias Dog = ConnectionWatchdog

    static func timeouts(
        handshake: Double? = 10, idle: Double? = 300, body: Double? = 30, keepalive: Double? = nil, keepaliveTimeout: Double = 20
    ) -> Dog.Timeouts {
        Dog.Timeouts(
            handshake: handshake.map(seconds), idle: idle.map(seconds), requestBody: body.map(seconds),
            keepaliveInterval: keepalive.map(seconds), keepaliveTimeout: seconds(keepaliveTimeout))
    }

    static func ready(_ timeouts: Dog.Timeouts) -> Dog {
        var dog = Dog(timeouts: timeouts, now: 0)
        dog.handshakeCompleted()
        return dog
    }

    @Test func handshakeMustCompleteInTime() {
        var dog = Dog(timeouts: Self.timeouts(), now: 0)
        #expect(dog.tick(now: seconds(9.9), sawRead: true, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(10), sawRead: true, openStreams: 0, streamsOpened: 0, closing: false) == .closeHandshakeTimedOut)

        var done = Dog(timeouts: Self.timeouts(), now: 0)
        done.handshakeCompleted()
        #expect(done.tick(now: seconds(10), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .none)
    }

    @Test func idleConnectionGetsGoawayThenIsForceClosedAfterTheGrace() {
        var dog = Self.ready(Self.timeouts())
        #expect(dog.tick(now: seconds(1), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(299), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(300), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .goAwayIdle)
        #expect(dog.tick(now: seconds(304), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(305), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .forceClose)
    }

    @Test func streamsOpenedBetweenTicksKeepTheConnectionBusy() {
        var dog = Self.ready(Self.timeouts())
        // Each tick finds no stream open, but some opened (and closed) since the last one.
        for (i, t) in stride(from: 100.0, through: 900, by: 100).enumerated() {
            #expect(dog.tick(now: seconds(t), sawRead: true, openStreams: 0, streamsOpened: UInt64(i + 1), closing: false) == .none)
        }
        // Then nothing more: idle from the last tick that saw activity (900 s).
        #expect(dog.tick(now: seconds(1100), sawRead: false, openStreams: 0, streamsOpened: 9, closing: false) == .none)
        #expect(dog.tick(now: seconds(1200), sawRead: false, openStreams: 0, streamsOpened: 9, closing: false) == .goAwayIdle)
    }

    @Test func anOpenStreamIsNotIdle() {
        var dog = Self.ready(Self.timeouts())
        for t in stride(from: 100.0, through: 2000, by: 100) {
            #expect(dog.tick(now: seconds(t), sawRead: false, openStreams: 1, streamsOpened: 1, closing: false) == .none)
        }
    }

    @Test func keepalivePingAfterAnIntervalWithoutReadsAndCloseWithoutAck() {
        var dog = Self.ready(Self.timeouts(idle: nil, keepalive: 60, keepaliveTimeout: 20))
        #expect(dog.tick(now: seconds(59), sawRead: false, openStreams: 1, streamsOpened: 1, closing: false) == .none)
        #expect(dog.tick(now: seconds(60), sawRead: false, openStreams: 1, streamsOpened: 1, closing: false) == .sendPing)
        #expect(dog.tick(now: seconds(79), sawRead: false, openStreams: 1, streamsOpened: 1, closing: false) == .none)
        #expect(dog.tick(now: seconds(80), sawRead: false, openStreams: 1, streamsOpened: 1, closing: false) == .closeKeepaliveTimedOut)
    }

    @Test func acknowledgedPingsRepeatEveryInterval() {
        var dog = Self.ready(Self.timeouts(idle: nil, keepalive: 60, keepaliveTimeout: 20))
        #expect(dog.tick(now: seconds(60), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .sendPing)
        dog.pingAcknowledged()
        #expect(dog.tick(now: seconds(80), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(119), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(120), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .sendPing)
    }

    @Test func readsPostponeThePingAndCountAsAnAnswer() {
        var dog = Self.ready(Self.timeouts(idle: nil, keepalive: 60, keepaliveTimeout: 20))
        #expect(dog.tick(now: seconds(50), sawRead: true, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(100), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(110), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .sendPing)
        #expect(dog.tick(now: seconds(125), sawRead: true, openStreams: 0, streamsOpened: 0, closing: false) == .none)
        #expect(dog.tick(now: seconds(140), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false) == .none, "no ACK needed: the peer was heard")
    }

    @Test func aClosingConnectionIsForceClosedAfterTheGrace() {
        var dog = Self.ready(Self.timeouts())
        #expect(dog.tick(now: seconds(1), sawRead: false, openStreams: 3, streamsOpened: 3, closing: true) == .none)
        #expect(dog.tick(now: seconds(5.9), sawRead: false, openStreams: 3, streamsOpened: 3, closing: true) == .none)
        #expect(dog.tick(now: seconds(6), sawRead: false, openStreams: 3, streamsOpened: 3, closing: true) == .forceClose)
    }

    @Test func theTickIsAFifthOfTheShortestTimeoutBetween10msAnd1s() {
        #expect(Self.timeouts().tick == seconds(1))
        #expect(Self.timeouts(handshake: 1, keepaliveTimeout: 1).tick == seconds(0.2))
        #expect(Self.timeouts(handshake: 0.001).tick == seconds(0.01))
    }
}

@Suite struct StreamStallClockTests {
    static func tick(_ clock: inout StreamStallClock, _ now: UInt64, _ limit: UInt64, paused: Bool) -> Bool {
        clock.tick(now: now, limit: limit, paused: paused)
    }

    @Test func quietForTheLimitIsStalled() {
        var clock = StreamStallClock()
        let limit = seconds(30)
        #expect(!Self.tick(&clock, seconds(0), limit, paused: false), "the first tick starts the clock")
        #expect(!Self.tick(&clock, seconds(29), limit, paused: false))
        #expect(Self.tick(&clock, seconds(30), limit, paused: false))
    }

    @Test func progressAndPausesRestartTheClock() {
        var clock = StreamStallClock()
        let limit = seconds(30)
        _ = Self.tick(&clock, 0, limit, paused: false)
        clock.progressed = true
        #expect(!Self.tick(&clock, seconds(20), limit, paused: false))
        #expect(!Self.tick(&clock, seconds(49), limit, paused: false))
        // The server stopped reading (backpressure): not the client's fault.
        #expect(!Self.tick(&clock, seconds(50), limit, paused: true))
        #expect(!Self.tick(&clock, seconds(79), limit, paused: false))
        #expect(Self.tick(&clock, seconds(80), limit, paused: false))
    }
}

@Suite struct OutboundAccountingTests {
    @Test func queuedBytesCountTheFramingAndShrinkAsNghttp2ReadsThem() {
        var queue = OutboundMessageQueue()
        queue.append([UInt8](repeating: 1, count: 100))
        queue.append([UInt8](repeating: 2, count: 50))
        #expect(queue.pendingBytes == 160)
        var buffer = [UInt8](repeating: 0, count: 64)
        var total = 0
        while !queue.isEmpty {
            let n = buffer.withUnsafeMutableBytes { queue.read(into: $0) }
            total += n
            #expect(queue.pendingBytes == 160 - total)
        }
        #expect(total == 160 && queue.pendingBytes == 0)
    }

    @Test func stateMachineReportsWhatWaitsForTheWindow() {
        var machine = GRPCServerStreamStateMachineTests.dispatched()
        #expect(machine.respond([UInt8](repeating: 7, count: 1000)) == .submitResponseHeaders)
        #expect(machine.outboundPendingBytes == 1005)
        _ = StreamEvents.read(&machine, window: 600)
        #expect(machine.outboundPendingBytes == 405)
    }

    @Test func refusingAnArrivingRequestAnswersTrailersOnly() {
        var machine = GRPCServerStreamStateMachineTests.receiving(maxMessageSize: 1 << 20)
        #expect(StreamEvents.data(&machine, StreamEvents.frame([1, 2], declaredLength: 1000)) == .none)
        #expect(machine.isReceivingRequest)
        let status = GRPCStatus(.resourceExhausted, "over budget")
        #expect(machine.refuse(status) == GRPCServerStreamStateMachineTests.rejected(status))
        #expect(!machine.isReceivingRequest)
        #expect(StreamEvents.data(&machine, [UInt8](repeating: 0, count: 998)) == .none, "later bytes are ignored")
        #expect(machine.receiveEndOfStream(now: { 0 }) == .none, "nothing dispatched")
        var dispatched = GRPCServerStreamStateMachineTests.dispatched()
        #expect(dispatched.refuse(status) == .none, "a dispatched call is not refused")
    }
}

/// Counts the `read` events that reach the channel (past the connection handler).
private final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// The connection handler's limits, through a server and a client handler in embedded channels.
/// Synchronous tests: the embedded loops are driven on the test's thread only.
@Suite struct ConnectionLimitsHandlerTests {
    typealias Connection = NGHTTP2SessionTests.Connection
    typealias Frame = NGHTTP2SessionTests.Frame

    static func drainServer(_ connection: Connection) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let out = try connection.server.readOutbound(as: ByteBuffer.self) { bytes += out.readableBytesView }
        return bytes
    }

    /// What a call's stream produced, once it has ended.
    static func status(_ stream: AsyncThrowingStream<[UInt8], any Error>) async -> GRPCStatus {
        await NGHTTP2SessionTests.collect(stream).status
    }

    @Test func noOutputAndNoReadsWhileNotWritableThenBothResume() throws {
        let connection = try Connection()
        let counter = ReadCounter()
        try connection.server.pipeline.syncOperations.addHandler(counter, position: .first)

        connection.server.isWritable = false
        connection.server.pipeline.fireChannelWritabilityChanged()
        connection.server.pipeline.read()
        #expect(counter.reads == 0, "the read is held back while the channel is not writable")

        // A PING needs an ACK; it stays in nghttp2 while nothing can be written.
        var ping = connection.server.allocator.buffer(capacity: 17)
        ping.writeBytes([0, 0, 8, 0x6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        try connection.server.writeInbound(ping)
        #expect(try Self.drainServer(connection).isEmpty)

        connection.server.isWritable = true
        connection.server.pipeline.fireChannelWritabilityChanged()
        let frames = NGHTTP2SessionTests.frames(try Self.drainServer(connection))
        #expect(frames.map(\.type) == [0x6] && frames.first?.flags == 0x1, "the PING ACK goes out once writable")
        #expect(frames.first?.payload == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(counter.reads == 1, "the held read is passed on")
    }

    @Test func queuedResponsesPastTheOutboundCapEndTheConnectionWithEnhanceYourCalm() throws {
        var configuration = GRPCServerConfiguration()
        configuration.maxConnectionOutboundBytes = 64 << 10
        let connection = try Connection(configuration: configuration)
        let before = connection.serverBytes.count
        connection.server.isWritable = false
        connection.server.pipeline.fireChannelWritabilityChanged()

        let call = connection.call(TestMethod.echo, [UInt8](repeating: 3, count: 128 << 10))
        try connection.pump()
        let goaways = NGHTTP2SessionTests.frames(Array(connection.serverBytes[before...])).filter { $0.type == Frame.goaway }
        #expect(goaways.map(\.errorCode) == [11], "GOAWAY(ENHANCE_YOUR_CALM), written although the channel was not writable")
        #expect(!connection.server.isActive)
        #expect(connection.serverHandler.responseBytesQueued == 0)
        #expect(connection.serverHandler.requestBytesHeld == 0)
        withExtendedLifetime(call) {}
    }

    @Test func aRequestPastTheConnectionBudgetIsRefusedAndItsBytesReleased() async throws {
        var configuration = GRPCServerConfiguration()
        configuration.maxConnectionRequestBytes = 100_000
        let connection = try Connection(configuration: configuration)
        let refused = connection.call(TestMethod.echo, [UInt8](repeating: 1, count: 200_000))
        let fine = connection.call(TestMethod.echo, [UInt8](repeating: 2, count: 50_000))
        try connection.pump()
        #expect(connection.serverHandler.requestBytesHeld == 0, "both streams closed: nothing stays charged")
        #expect(connection.server.isActive)

        let status = await Self.status(refused)
        #expect(status.code == .resourceExhausted)
        #expect(status.message.contains("memory budget of 97.7 KiB"))
        #expect(await NGHTTP2SessionTests.collect(fine).messages == [[UInt8](repeating: 2, count: 50_000)])
    }

    @Test func theServerBudgetIsSharedAndADispatchedMessageStaysChargedUntilItsStreamCloses() async throws {
        let budget = GRPCRequestMemoryBudget(limit: 300_000)
        let first = try Connection(budget: budget)
        let second = try Connection(budget: budget)

        let held = first.call(TestMethod.hold, [UInt8](repeating: 1, count: 200_000))
        try first.pump()
        let call = try #require(first.observations.heldCalls.first)
        #expect(first.serverHandler.requestBytesHeld >= 200_000, "the call runs: its message is still charged")
        #expect(budget.usedBytes == first.serverHandler.requestBytesHeld)

        let refused = second.call(TestMethod.echo, [UInt8](repeating: 2, count: 200_000))
        try second.pump()
        #expect(second.serverHandler.requestBytesHeld == 0)

        call.respond([42])
        try first.pump()
        #expect(budget.usedBytes == 0, "released when the stream closed")

        let status = await Self.status(refused)
        #expect(status.code == .resourceExhausted)
        #expect(status.message.contains("max-server-request-bytes"))
        #expect(await NGHTTP2SessionTests.collect(held).messages == [[42]])
    }
}
