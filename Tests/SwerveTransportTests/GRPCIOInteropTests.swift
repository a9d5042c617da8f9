import Foundation
import Testing

@testable import SwerveTransport
import SwerveStatus
import SwerveTesting

/// Python `grpcio` (a client nobody here wrote) against our server. Runs when the repository's
/// virtualenv has grpcio installed; skipped otherwise.
@Suite(.timeLimit(.minutes(2))) struct GRPCIOInteropTests {
    static let python: String = {
        // Tests/SwerveTransportTests/<this file> → repository root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".venv/bin/python").path
    }()

    static let grpcioAvailable: Bool = {
        guard FileManager.default.isExecutableFile(atPath: python) else { return false }
        return (try? run(python, ["-c", "import grpc"]).status) == 0
    }()

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let script = #"""
        import sys, grpc
        port = int(sys.argv[1])
        ident = lambda b: b
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        def uu(m): return ch.unary_unary(m, request_serializer=ident, response_deserializer=ident)
        def expect_code(fn, code, details=None):
            try:
                fn()
            except grpc.RpcError as e:
                assert e.code() == code, (e.code(), e.details())
                if details is not None:
                    assert e.details() == details, repr(e.details())
                return
            raise AssertionError(f"expected {code}")
        echo = uu('/test.Test/Echo')
        assert echo(b'hello', timeout=30) == b'hello'
        assert echo(b'', timeout=30) == b''
        big = bytes(range(256)) * (3 * 4096)
        assert echo(big, timeout=60) == big
        expect_code(lambda: echo(b'x' * (4 * 1024 * 1024 + 1), timeout=60), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert echo(b'again', timeout=30) == b'again'
        expect_code(lambda: echo(b'z', timeout=30, compression=grpc.Compression.Gzip), grpc.StatusCode.UNIMPLEMENTED)
        msg = "model «résnet» 100% not found: 日本語 %41"
        expect_code(lambda: uu('/test.Test/Fail')(msg.encode(), timeout=30), grpc.StatusCode.NOT_FOUND, msg)
        expect_code(lambda: uu('/no.Such/Method')(b'', timeout=30), grpc.StatusCode.UNIMPLEMENTED)
        expect_code(lambda: uu('/test.Test/Silent')(b'', timeout=0.2), grpc.StatusCode.DEADLINE_EXCEEDED)
        su = ch.stream_unary('/test.Test/Echo', request_serializer=ident, response_deserializer=ident)
        expect_code(lambda: su(iter([b'a', b'b']), timeout=30), grpc.StatusCode.UNIMPLEMENTED)
        expect_code(lambda: su(iter([]), timeout=30), grpc.StatusCode.INVALID_ARGUMENT, "no request message")
        assert su(iter([b'one']), timeout=30) == b'one'
        stream = ch.unary_stream('/test.Test/Stream', request_serializer=ident, response_deserializer=ident)
        assert [m.decode() for m in stream(b'300', timeout=60)] == [str(i) for i in range(300)]
        futures = [echo.future(str(i).encode() * (i % 50), timeout=60) for i in range(300)]
        assert all(f.result() == str(i).encode() * (i % 50) for i, f in enumerate(futures))
        ch.close()
        print("OK")
        """#

    @Test(.enabled(if: grpcioAvailable, "needs .venv with grpcio")) func grpcioClientTalksToOurServer() async throws {
        try await withTestServer { server, _ in
            let scriptURL = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-grpcio-\(UUID()).py")
            try Self.script.write(to: scriptURL, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: scriptURL) }
            let port = server.port
            let result = try await Task.detached { try Self.run(Self.python, [scriptURL.path, String(port)]) }.value
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("OK"))
        }
    }

    static let serverScript = #"""
        import sys, grpc
        from concurrent import futures
        def fail(req, ctx):
            ctx.abort(grpc.StatusCode.NOT_FOUND, req.decode())
        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                m = details.method
                if m == '/test.Test/Echo':
                    return grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)
                if m == '/test.Test/Stream':
                    return grpc.unary_stream_rpc_method_handler(
                        lambda req, ctx: (str(i).encode() for i in range(int(req))))
                if m == '/test.Test/Fail':
                    return grpc.unary_unary_rpc_method_handler(fail)
                return None
        server = grpc.server(futures.ThreadPoolExecutor(8), handlers=[Handler()],
                             options=[('grpc.max_receive_message_length', 8 << 20),
                                      ('grpc.max_send_message_length', 8 << 20)])
        port = server.add_insecure_port('127.0.0.1:0')
        server.start()
        print(port, flush=True)
        sys.stdin.read()
        server.stop(0)
        """#

    @Test(.enabled(if: grpcioAvailable, "needs .venv with grpcio")) func ourClientTalksToAGrpcioServer() async throws {
        let scriptURL = FileManager.default.temporaryDirectory.appendingPathComponent("swerve-grpcio-server-\(UUID()).py")
        try Self.serverScript.write(to: scriptURL, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scriptURL) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = [scriptURL.path]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        defer {
            try? stdin.fileHandleForWriting.close()
            process.terminate()
            process.waitUntilExit()
        }
        let reader = stdout.fileHandleForReading
        let port = await Task.detached { () -> Int? in
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = reader.availableData
                if chunk.isEmpty { return nil }
                line.append(chunk)
            }
            return Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }.value
        let serverPort = try #require(port)

        let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: serverPort)
        #expect(try await client.unary(TestMethod.echo, Array("hi".utf8), timeout: .seconds(5)) == Array("hi".utf8))
        #expect(try await client.unary(TestMethod.echo, [], timeout: .seconds(5)) == [])
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        #expect(try await client.unary(TestMethod.echo, big, timeout: .seconds(10)) == big)
        let message = "model «résnet» 100% not found"
        let status = await statusThrown { _ = try await client.unary(TestMethod.fail, Array(message.utf8)) }
        #expect(status == GRPCStatus(.notFound, message))
        let unknown = await statusThrown { _ = try await client.unary("/no.Such/Method", []) }
        #expect(unknown?.code == .unimplemented)
        var received: [String] = []
        for try await m in client.serverStreaming(TestMethod.stream, Array("200".utf8)) {
            received.append(String(decoding: m, as: UTF8.self))
        }
        #expect(received == (0..<200).map(String.init))
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<200 {
                group.addTask {
                    let request = Array("r\(i)".utf8)
                    return try await client.unary(TestMethod.echo, request, timeout: .seconds(10)) == request
                }
            }
            var ok = 0
            for try await matched in group where matched { ok += 1 }
            #expect(ok == 200)
        }
        await client.close()
    }
}
