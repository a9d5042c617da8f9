import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SwerveTransport
import SwerveStatus

/// The shared session wrapper under both connection handlers, with no socket: a server and a
/// client handler in two embedded channels, their bytes carried across by hand.
///
/// The embedded loops are driven only before a test's first `await`, so they stay on one thread.
@Suite struct NGHTTP2SessionTests {
    /// One HTTP/2 frame as it went over the wire.
    struct Frame {
        var type: UInt8
        var flags: UInt8
        var streamID: UInt32
        var payload: [UInt8]

        static let goaway: UInt8 = 0x7
        static let headers: UInt8 = 0x1
        static let settings: UInt8 = 0x4
        static let rstStream: UInt8 = 0x3
        static let windowUpdate: UInt8 = 0x8

        /// GOAWAY's last-stream-id.
        var lastStreamID: UInt32 { payload[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF }
        /// GOAWAY's error code.
        var errorCode: UInt32 {
            payload[4..<8].reduce(0) { $0 << 8 | UInt32($1) }
        }
    }

    /// Splits bytes into frames (the client preface, if any, must have been removed).
    static func frames(_ bytes: [UInt8]) -> [Frame] {
        var out: [Frame] = []
        var i = 0
        while i + 9 <= bytes.count {
            let length = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            guard i + 9 + length <= bytes.count else { break }
            let stream = bytes[i + 5..<i + 9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
            out.append(Frame(type: bytes[i + 3], flags: bytes[i + 4], streamID: stream, payload: Array(bytes[i + 9..<i + 9 + length])))
            i += 9 + length
        }
        return out
    }

    final class Connection {
        let observations = TestObservations()
        let server: EmbeddedChannel
        let client: EmbeddedChannel
        let clientHandler: GRPCClientConnectionHandler
        let serverHandler: GRPCServerConnectionHandler
        /// Everything the server wrote, in order.
        var serverBytes: [UInt8] = []

        init(configuration: GRPCServerConfiguration = GRPCServerConfiguration(), budget: GRPCRequestMemoryBudget? = nil) throws {
            serverHandler = GRPCServerConnectionHandler(
                configuration: configuration, callHandler: TestCallHandler(observations: observations),
                logger: Logger(label: "test"), requestBudget: budget)
            server = EmbeddedChannel(handler: serverHandler)
            clientHandler = GRPCClientConnectionHandler(authority: "embedded", maxReceiveMessageSize: 1 << 20)
            client = EmbeddedChannel(handler: clientHandler)
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
            try server.connect(to: address).wait()
            try client.connect(to: address).wait()
            try pump()
        }

        /// Carries bytes both ways (running each loop's scheduled work) until neither writes more.
        func pump() throws {
            for _ in 0..<1000 {
                var moved = false
                server.embeddedEventLoop.run()
                client.embeddedEventLoop.run()
                while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                    moved = true
                    if server.isActive { try server.writeInbound(bytes) }
                }
                while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                    moved = true
                    serverBytes += bytes.readableBytesView
                    if client.isActive { try client.writeInbound(bytes) }
                }
                if !moved { return }
            }
            Issue.record("the two sides never went quiet")
        }

        func call(_ method: String, _ request: [UInt8]) -> AsyncThrowingStream<[UInt8], any Error> {
            let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
            clientHandler.startCall(method: method, request: request, timeout: nil, metadata: [], responder: .streaming(continuation))
            return stream
        }
    }

    static func collect(_ stream: AsyncThrowingStream<[UInt8], any Error>) async -> (messages: [[UInt8]], status: GRPCStatus) {
        var messages: [[UInt8]] = []
        do {
            for try await message in stream { messages.append(message) }
            return (messages, .ok)
        } catch {
            return (messages, GRPCStatus(converting: error))
        }
    }

    @Test func callsRoundTripBetweenTheTwoSessions() async throws {
        let connection = try Connection()
        let echo = connection.call(TestMethod.echo, [1, 2, 3])
        let fail = connection.call(TestMethod.fail, Array("gone".utf8))
        let unknown = connection.call("/no.Such/Method", [])
        try connection.pump()
        #expect(connection.server.isActive && connection.client.isActive)
        #expect(Self.frames(connection.serverBytes).first?.type == Frame.settings, "the server's preface is its SETTINGS")

        let (echoed, echoStatus) = await Self.collect(echo)
        #expect(echoed == [[1, 2, 3]])
        #expect(echoStatus == .ok)
        #expect(await Self.collect(fail).status == GRPCStatus(.notFound, "gone"))
        #expect(await Self.collect(unknown).status == GRPCStatus(.unimplemented, "unknown method /no.Such/Method"))
    }

    /// nghttp2 allocates from the session's pool: after the first calls, later calls take most
    /// of their blocks from it rather than from malloc.
    @Test func laterCallsReuseTheSessionPoolsBlocks() async throws {
        let connection = try Connection()
        // One call at a time, each answered before the next starts (pumped, not awaited: the
        // embedded loops stay on this thread until the first await).
        let first = connection.call(TestMethod.echo, [1])
        try connection.pump()
        let warm = connection.serverHandler.sessionPoolCounts
        var calls: [AsyncThrowingStream<[UInt8], any Error>] = []
        for i in 0..<20 {
            calls.append(connection.call(TestMethod.echo, [UInt8(i)]))
            try connection.pump()
        }
        let after = connection.serverHandler.sessionPoolCounts
        #expect(await Self.collect(first).messages == [[1]])
        for (i, call) in calls.enumerated() { #expect(await Self.collect(call).messages == [[UInt8(i)]]) }
        #expect(after.reused - warm.reused > 4 * (after.fresh - warm.fresh), "reused \(after.reused - warm.reused), fresh \(after.fresh - warm.fresh)")
        #expect(after.cachedBytes <= 32 * 1024)
    }

    /// An answer given while a read is being delivered is written when the read completes, with
    /// no flush task of its own; an answer given outside a read (a worker's, hopping back to the
    /// loop) still schedules one, so it leaves without waiting for the next read.
    @Test func answersGivenDuringAReadNeedNoFlushTask() async throws {
        let connection = try Connection()
        let before = connection.serverHandler.sessionFlushTasks
        var calls: [AsyncThrowingStream<[UInt8], any Error>] = []
        for i in 0..<10 {
            calls.append(connection.call(TestMethod.echo, [UInt8(i)]))
            try connection.pump()
        }
        #expect(connection.serverHandler.sessionFlushTasks == before, "the echo answers inside the read")
        for (i, call) in calls.enumerated() { #expect(await Self.collect(call).messages == [[UInt8(i)]]) }

        // A call answered later, outside any read: the answer needs (and gets) a flush task.
        let late = connection.call(TestMethod.hold, [42])
        try connection.pump()
        let held = try #require(connection.observations.heldCalls.first)
        let beforeLate = connection.serverHandler.sessionFlushTasks
        held.respond([43])
        #expect(connection.serverHandler.sessionFlushTasks == beforeLate + 1)
        try connection.pump()
        #expect(await Self.collect(late).messages == [[43]])
    }

    @Test func protocolErrorIsAnsweredWithGoawayThenTheConnectionCloses() throws {
        let connection = try Connection()
        let before = connection.serverBytes.count
        var garbage = connection.server.allocator.buffer(capacity: 32)
        // A DATA frame on stream 0 is a connection error (RFC 9113 §6.1).
        garbage.writeBytes([0, 0, 1, 0x0, 0x0, 0, 0, 0, 0, 0xFF])
        try connection.server.writeInbound(garbage)
        connection.server.embeddedEventLoop.run()
        while let bytes = try connection.server.readOutbound(as: ByteBuffer.self) {
            connection.serverBytes += bytes.readableBytesView
        }
        let goaways = Self.frames(Array(connection.serverBytes[before...])).filter { $0.type == Frame.goaway }
        #expect(goaways.count == 1)
        #expect(goaways.first?.errorCode == 1, "PROTOCOL_ERROR")
        #expect(!connection.server.isActive, "closed after the GOAWAY was written")
        // Further bytes are ignored, not fed to the stopped session.
        try connection.server.writeInbound(garbage)
        #expect(try connection.server.readOutbound(as: ByteBuffer.self) == nil)
    }

    @Test func gracefulShutdownLetsTheCallInFlightFinishThenCloses() async throws {
        let connection = try Connection()
        let held = connection.call(TestMethod.hold, [7])
        try connection.pump()
        let call = try #require(connection.observations.heldCalls.first)

        connection.server.pipeline.fireUserInboundEventTriggered(GRPCServerGracefulShutdownEvent())
        try connection.pump()
        // First the shutdown notice: GOAWAY(NO_ERROR) refusing nothing yet (last-stream-id 2^31−1).
        var goaways = Self.frames(connection.serverBytes).filter { $0.type == Frame.goaway }
        #expect(goaways.count == 1)
        #expect(goaways.first?.errorCode == 0, "NO_ERROR")
        #expect(goaways.first?.lastStreamID == 0x7FFF_FFFF)
        // Then, on the watchdog's tick a second later, the final GOAWAY naming the last stream
        // processed (the watchdog reads the real clock; the embedded loop runs its tick).
        try await Task.sleep(for: .milliseconds(1100))
        connection.server.embeddedEventLoop.advanceTime(by: .milliseconds(2100))
        try connection.pump()
        goaways = Self.frames(connection.serverBytes).filter { $0.type == Frame.goaway }
        #expect(goaways.count == 2)
        #expect(goaways.last?.errorCode == 0, "NO_ERROR")
        #expect(goaways.last?.lastStreamID == 1)
        #expect(connection.server.isActive, "a call is still in flight")
        // The client has heard GOAWAY: a new call is refused without reaching the server.
        let refused = connection.call(TestMethod.echo, [1])
        try connection.pump()

        call.respond([42])
        try connection.pump()
        #expect(!connection.server.isActive, "idle after GOAWAY: nghttp2 wants neither to read nor to write")

        let (messages, status) = await Self.collect(held)
        #expect(messages == [[42]])
        #expect(status == .ok)
        let refusal = await Self.collect(refused).status
        #expect(refusal.code == .unavailable)
        #expect(refusal.message.contains("GOAWAY"))
    }

    @Test func rejectedUploadIsAnsweredTrailersOnlyThenResetWithNoError() throws {
        let connection = try Connection()
        // A request larger than the server accepts, sent by our client in one go: the server
        // answers as soon as the prefix arrives and tells the client to stop uploading.
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        connection.clientHandler.startCall(
            method: TestMethod.echo, request: [UInt8](repeating: 1, count: (4 << 20) + 1), timeout: nil, metadata: [],
            responder: .streaming(continuation))
        try connection.pump()
        // (Flow-control WINDOW_UPDATEs for what did arrive may come between.)
        let frames = Self.frames(connection.serverBytes).filter { $0.streamID == 1 && $0.type != Frame.windowUpdate }
        #expect(frames.map(\.type) == [Frame.headers, Frame.rstStream])
        #expect(frames.first.map { $0.flags & 0x1 != 0 } == true, "trailers-only: END_STREAM on the HEADERS")
        #expect(frames.last?.payload == [0, 0, 0, 0], "RST_STREAM(NO_ERROR)")
        #expect(connection.server.isActive && connection.client.isActive)
        withExtendedLifetime(stream) {}
    }
}
