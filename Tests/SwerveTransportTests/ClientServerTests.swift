import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import SwerveTransport
import SwerveStatus
import SwerveTesting

/// Our client against our server over real loopback sockets.
@Suite(.timeLimit(.minutes(2))) struct ClientServerTests {
    @Test func unaryRoundTrip() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            #expect(try await client.unary(TestMethod.echo, [1, 2, 3]) == [1, 2, 3])
            #expect(try await client.unary(TestMethod.echo, []) == [])
            await client.close()
        }
    }

    @Test func threeMebibytesRoundTrip() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            #expect(try await client.unary(TestMethod.echo, big) == big)
            await client.close()
        }
    }

    @Test func oversizeMessageIsResourceExhaustedAndTheConnectionSurvives() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            let tooBig = [UInt8](repeating: 7, count: (4 << 20) + 1)
            let status = await statusThrown { _ = try await client.unary(TestMethod.echo, tooBig) }
            #expect(status?.code == .resourceExhausted)
            #expect(status?.message.contains("exceeds") == true)
            #expect(try await client.unary(TestMethod.echo, [5]) == [5])
            await client.close()
        }
    }

    @Test func unknownMethodIsTheHandlersBusiness() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            let status = await statusThrown { _ = try await client.unary("/no.Such/Method", []) }
            #expect(status == GRPCStatus(.unimplemented, "unknown method /no.Such/Method"))
            await client.close()
        }
    }

    @Test func errorStatusMessageRoundTripsNonASCIIAndPercent() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            let message = "model «résnet» 100% not found: 日本語 %41\ttab"
            let status = await statusThrown { _ = try await client.unary(TestMethod.fail, Array(message.utf8)) }
            #expect(status == GRPCStatus(.notFound, message))
            await client.close()
        }
    }

    @Test func twoHundredConcurrentCallsOnOneConnection() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let request = Array("request-\(i)".utf8) + [UInt8](repeating: UInt8(i & 0xFF), count: i * 50)
                        return try await client.unary(TestMethod.echo, request) == request
                    }
                }
                var ok = 0
                for try await matched in group where matched { ok += 1 }
                #expect(ok == 200)
            }
            await client.close()
        }
    }

    @Test func twoHundredConcurrentCallsAcrossFourConnections() async throws {
        try await withTestServer { server, _ in
            var clients: [GRPCClientConnection] = []
            for _ in 0..<4 { clients.append(try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)) }
            try await waitUntil("server.activeConnectionCount == 4") { server.activeConnectionCount == 4 }
            let pool = clients
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let request = Array("c\(i % 4)-\(i)".utf8)
                        return try await pool[i % 4].unary(TestMethod.echo, request) == request
                    }
                }
                var ok = 0
                for try await matched in group where matched { ok += 1 }
                #expect(ok == 200)
            }
            for client in clients { await client.close() }
            try await waitUntil("server.activeConnectionCount == 0") { server.activeConnectionCount == 0 }
        }
    }

    @Test func deadlineExpiresServerSideAndCancelsTheCall() async throws {
        try await withTestServer { server, observations in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            // The client-side timer is the backstop; the server's (same deadline) usually fires first.
            let status = await statusThrown { _ = try await client.unary(TestMethod.silent, [], timeout: .milliseconds(200)) }
            #expect(status == GRPCStatus.deadlineExceeded)
            try await waitUntil("observations.cancelledCount == 1") { observations.cancelledCount == 1 }
            #expect(try await client.unary(TestMethod.echo, [1]) == [1])
            await client.close()
        }
    }

    @Test func serverSendsDeadlineExceededItself() async throws {
        try await withTestServer { server, observations in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            // No client timer: only the grpc-timeout header, so the answer must come from the server.
            let outcome = Mutex<GRPCStatus??>(nil)
            let call = Task {
                let status = await statusThrown {
                    _ = try await client.unary(TestMethod.silent, [], metadata: [("grpc-timeout", "150m")])
                }
                outcome.withLock { $0 = .some(status) }
            }
            do {
                try await waitUntil("the server to answer the passed deadline") { outcome.withLock { $0 != nil } }
            } catch {
                await client.close()  // ends the call (UNAVAILABLE), so the test stays bounded
                await call.value
                throw error
            }
            await call.value
            #expect(outcome.withLock { $0 } == .some(GRPCStatus(.deadlineExceeded, "deadline exceeded")))
            try await waitUntil("observations.cancelledCount == 1") { observations.cancelledCount == 1 }
            await client.close()
        }
    }

    @Test func transportAnswersHeaderProblemsItself() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            let gzip = await statusThrown { _ = try await client.unary(TestMethod.echo, [1], metadata: [("grpc-encoding", "gzip")]) }
            #expect(gzip?.code == .unimplemented)
            let badTimeout = await statusThrown { _ = try await client.unary(TestMethod.echo, [1], metadata: [("grpc-timeout", "soon")]) }
            #expect(badTimeout?.code == .invalidArgument)
            let contentType = await statusThrown {
                _ = try await client.unary(TestMethod.echo, [1], metadata: [("content-type", "text/plain")])
            }
            #expect(contentType?.code == .unknown)
            #expect(contentType?.message.contains("content-type") == true)
            #expect(try await client.unary(TestMethod.echo, [2]) == [2])
            // The longest expressible timeout must not overflow the deadline arithmetic.
            #expect(try await client.unary(TestMethod.echo, [3], metadata: [("grpc-timeout", "99999999H")]) == [3])
            await client.close()
        }
    }

    @Test func serverStreamingDeliversEveryMessageInOrder() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            var received: [String] = []
            for try await message in client.serverStreaming(TestMethod.stream, Array("500".utf8)) {
                received.append(String(decoding: message, as: UTF8.self))
            }
            #expect(received == (0..<500).map(String.init))
            // Zero messages then OK.
            var count = 0
            for try await _ in client.serverStreaming(TestMethod.stream, Array("0".utf8)) { count += 1 }
            #expect(count == 0)
            // A streaming call that ends in an error throws it.
            let status = await statusThrown {
                for try await _ in client.serverStreaming(TestMethod.fail, Array("gone".utf8)) {}
            }
            #expect(status == GRPCStatus(.notFound, "gone"))
            await client.close()
        }
    }

    @Test func serverStreamingLargerThanTheFlowControlWindows() async throws {
        try await withTestServer { server, _ in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            var index = 0
            for try await message in client.serverStreaming(TestMethod.bigStream, Array("6".utf8)) {
                #expect(message == bigMessage(UInt8(index)))
                index += 1
            }
            #expect(index == 6)
            await client.close()
        }
    }

    @Test func clientResetCancelsTheServerCall() async throws {
        try await withTestServer { server, observations in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            let task = Task {
                for try await _ in client.serverStreaming(TestMethod.hold, []) {}
            }
            try await waitUntil("observations.heldCalls.count == 1") { observations.heldCalls.count == 1 }
            let call = observations.heldCalls[0]
            #expect(!call.isCancelled)
            task.cancel()  // drops the stream → RST_STREAM(CANCEL)
            try await waitUntil("call.isCancelled") { call.isCancelled }
            try await waitUntil("observations.cancelledCount == 1") { observations.cancelledCount == 1 }
            // Late answers are ignored and the connection keeps working.
            call.send([1])
            call.finish(.ok)
            let ran = Mutex(false)
            call.onCancel { ran.withLock { $0 = true } }
            #expect(ran.withLock { $0 })
            #expect(try await client.unary(TestMethod.echo, [3]) == [3])
            await client.close()
        }
    }

    @Test func connectionLossFailsPendingCallsWithUnavailable() async throws {
        try await withTestServer { server, observations in
            let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            async let pending = statusThrown { _ = try await client.unary(TestMethod.hold, []) }
            try await waitUntil("observations.heldCalls.count == 1") { observations.heldCalls.count == 1 }
            await client.close()
            #expect(await pending?.code == .unavailable)
            try await waitUntil("observations.heldCalls[0].isCancelled") { observations.heldCalls[0].isCancelled }
            let after = await statusThrown { _ = try await client.unary(TestMethod.echo, []) }
            #expect(after?.code == .unavailable)
        }
    }

    @Test func gracefulShutdownLetsInFlightCallsFinishAndRefusesNewOnes() async throws {
        var configuration = GRPCServerConfiguration()
        configuration.port = 0
        configuration.eventLoopThreads = 1
        let observations = TestObservations()
        let server = GRPCServer(
            configuration: configuration, handler: TestCallHandler(observations: observations),
            logger: Logger(label: "test"))
        try await server.start()
        let port = server.port
        let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)
        async let inFlight = client.unary(TestMethod.hold, [])
        try await waitUntil("observations.heldCalls.count == 1") { observations.heldCalls.count == 1 }

        let shutdown = Task { await server.shutdownGracefully(timeout: .seconds(20)) }
        // Once GOAWAY reaches the client, new calls on this connection are refused.
        try await waitUntil("new calls on the connection to be refused after GOAWAY") {
            await statusThrown({ _ = try await client.unary(TestMethod.echo, [1]) })?.code == .unavailable
        }
        // New connections are refused too.
        let newConnection = await statusThrown { _ = try await GRPCClientConnection.connect(host: "127.0.0.1", port: port) }
        #expect(newConnection?.code == .unavailable)
        #expect(server.activeConnectionCount == 1)

        observations.heldCalls[0].respond([42])
        #expect(try await inFlight == [42])
        await shutdown.value
        #expect(server.activeConnectionCount == 0)
        await client.close()
    }

    @Test func gracefulShutdownTimeoutClosesStuckConnections() async throws {
        var configuration = GRPCServerConfiguration()
        configuration.port = 0
        let observations = TestObservations()
        let server = GRPCServer(
            configuration: configuration, handler: TestCallHandler(observations: observations), logger: Logger(label: "test"))
        try await server.start()
        let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
        async let stuck = statusThrown { _ = try await client.unary(TestMethod.hold, []) }
        try await waitUntil("observations.heldCalls.count == 1") { observations.heldCalls.count == 1 }
        await server.shutdownGracefully(timeout: .milliseconds(200))
        #expect(await stuck?.code == .unavailable)
        #expect(observations.heldCalls[0].isCancelled)
        #expect(server.activeConnectionCount == 0)
    }

    @Test func garbageBytesCloseOnlyThatConnection() async throws {
        try await withTestServer { server, _ in
            let good = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            #expect(try await good.unary(TestMethod.echo, [1]) == [1])

            let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: server.port).get()
            try await waitUntil("server.activeConnectionCount == 2") { server.activeConnectionCount == 2 }
            var garbage = raw.allocator.buffer(capacity: 64)
            garbage.writeString("GET / HTTP/1.1\r\nHost: x\r\n\r\n\u{0}\u{1}\u{2}garbage garbage garbage")
            try await raw.writeAndFlush(garbage)
            // The server closes the connection (bounded wait on closeFuture).
            do {
                try await waitUntil("the server to close the connection that sent garbage") { !raw.isActive }
            } catch {
                try? await raw.close()
                throw error
            }
            try await waitUntil("server.activeConnectionCount == 1") { server.activeConnectionCount == 1 }
            #expect(try await good.unary(TestMethod.echo, [2]) == [2])
            await good.close()
        }
    }
}
