import Dispatch
import SwerveProto
import SwerveStatus
import SwerveTransport

/// Answers a unary call: decodes the request, runs `body` and responds with its encoded
/// response; a request that does not decode, or an error `body` throws, ends the call with the
/// error's own status (`GRPCStatus(converting:)`).
public func serveUnary<Req: ProtoMessage, Resp: ProtoMessage>(_ call: GRPCServerCall, _ body: (Req) throws -> Resp) {
    do {
        let req = try Req(serializedBytes: call.message)
        call.respond(try body(req).serializedBytes())
    } catch {
        call.finish(GRPCStatus(converting: error))
    }
}

/// `serveUnary` on `queue`, for bodies that block (loading models, fsync, training bookkeeping):
/// the event loop must never wait for them.
public func serveBlocking<Req: ProtoMessage, Resp: ProtoMessage>(
    _ call: GRPCServerCall, on queue: DispatchQueue, _ body: @escaping @Sendable (Req) throws -> Resp
) {
    queue.async { serveUnary(call, body) }
}
