import Dispatch
import SwerveProto
import SwerveTransport
import SwerveStatus

/// Unary plumbing shared by Swerve's services: decode the request, run the body, answer with the
/// encoded response, or turn the error into a status with the service's own mapping.
func serveUnary<Req: ProtoMessage, Resp: ProtoMessage>(
    _ call: GRPCServerCall, status: (any Error) -> GRPCStatus, _ body: (Req) throws -> Resp
) {
    do {
        let req = try Req(serializedBytes: call.message)
        call.respond(try body(req).serializedBytes())
    } catch {
        call.finish(status(error))
    }
}

/// `serveUnary` on `queue`, for bodies that block (loading models, fsync, training bookkeeping):
/// the event loop must never wait for them.
func serveBlocking<Req: ProtoMessage, Resp: ProtoMessage>(
    _ call: GRPCServerCall, on queue: DispatchQueue, status: @escaping @Sendable (any Error) -> GRPCStatus,
    _ body: @escaping @Sendable (Req) throws -> Resp
) {
    queue.async { serveUnary(call, status: status, body) }
}
