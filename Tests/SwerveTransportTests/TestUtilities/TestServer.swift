import Logging
import NIOCore
import Synchronization
import Testing

@testable import SwerveTransport
import SwerveStatus

/// Methods the test server answers, keyed by `:path`.
enum TestMethod {
    static let echo = "/test.Test/Echo"
    /// Request: a decimal count N; responds with N messages "0", "1", ... sent from another thread.
    static let stream = "/test.Test/Stream"
    /// Request: a decimal count N; responds with N messages of 3 MiB (more than any flow-control window).
    static let bigStream = "/test.Test/BigStream"
    /// Never answers: only a deadline or the client ends the call. Records cancellation.
    static let silent = "/test.Test/Silent"
    /// Request: UTF-8 message; finishes with NOT_FOUND and that message.
    static let fail = "/test.Test/Fail"
    /// Parks the call until the test answers it through `TestCallHandler.heldCalls`.
    static let hold = "/test.Test/Hold"
}

/// Shared observations between the handler (event loop / other threads) and the test.
final class TestObservations: Sendable {
    private let state = Mutex(State())
    struct State {
        var cancelledMethods: [String] = []
        var heldCalls: [GRPCServerCall] = []
        var sendsAfterCancel = 0
    }
    func with<R>(_ body: (inout State) -> R) -> R { state.withLock { body(&$0) } }
    var cancelledCount: Int { with { $0.cancelledMethods.count } }
    var heldCalls: [GRPCServerCall] { with { $0.heldCalls } }
}

struct TestCallHandler: GRPCCallHandler {
    let observations: TestObservations

    func handle(_ call: GRPCServerCall) {
        let observations = self.observations
        switch call.method {
        case TestMethod.echo:
            call.respond(call.message)
        case TestMethod.stream:
            let count = Int(String(decoding: call.message, as: UTF8.self)) ?? 0
            Task.detached {
                for i in 0..<count { call.send(Array(String(i).utf8)) }
                call.finish(.ok)
            }
        case TestMethod.bigStream:
            let count = Int(String(decoding: call.message, as: UTF8.self)) ?? 0
            Task.detached {
                for i in 0..<count { call.send(bigMessage(UInt8(i))) }
                call.finish(.ok)
            }
        case TestMethod.silent:
            call.onCancel { observations.with { $0.cancelledMethods.append(call.method) } }
        case TestMethod.fail:
            call.finish(GRPCStatus(.notFound, String(decoding: call.message, as: UTF8.self)))
        case TestMethod.hold:
            call.onCancel { observations.with { $0.cancelledMethods.append(call.method) } }
            observations.with { $0.heldCalls.append(call) }
        default:
            call.finish(GRPCStatus(.unimplemented, "unknown method \(call.method)"))
        }
    }
}

/// Starts a server on a free loopback port, runs `body`, shuts it down.
func withTestServer<R>(
    configure: (inout GRPCServerConfiguration) -> Void = { _ in },
    _ body: (GRPCServer, TestObservations) async throws -> R
) async throws -> R {
    var configuration = GRPCServerConfiguration()
    configuration.port = 0
    configuration.eventLoopThreads = 2
    configure(&configuration)
    let observations = TestObservations()
    let server = GRPCServer(
        configuration: configuration, handler: TestCallHandler(observations: observations),
        logger: Logger(label: "test-server"))
    try await server.start()
    do {
        let result = try await body(server, observations)
        await server.shutdownGracefully(timeout: .seconds(5))
        return result
    } catch {
        await server.shutdownGracefully(timeout: .seconds(5))
        throw error
    }
}

/// 3 MiB filled with `seed` (ends marked), so reordering, truncation or mixing would show.
func bigMessage(_ seed: UInt8) -> [UInt8] {
    var message = [UInt8](repeating: seed, count: 3 << 20)
    message[0] = 0xAA
    message[message.count - 1] = 0x55
    return message
}
