import SwerveStatus
import SwerveTransport

/// Several services on one gRPC server: a call goes to the first service whose method-path
/// prefix (e.g. "/swerve.v1.Registry/") its `:path` starts with, else to `fallback`.
public struct ServiceRouter: GRPCCallHandler {
    private let routes: [(prefix: String, handler: any GRPCCallHandler)]
    private let fallback: any GRPCCallHandler

    public init(_ routes: [(prefix: String, handler: any GRPCCallHandler)], fallback: any GRPCCallHandler) {
        self.routes = routes
        self.fallback = fallback
    }

    public func handle(_ call: GRPCServerCall) {
        for route in routes where call.method.hasPrefix(route.prefix) {
            route.handler.handle(call)
            return
        }
        fallback.handle(call)
    }

    /// Every service sees the burst (each may defer its own calls' work); `flush` flushes them all.
    public func dispatchBurst(_ body: (_ flush: () -> Void) -> Void) {
        func nest(_ i: Int, _ outer: () -> Void) {
            let handler = i == routes.count ? fallback : routes[i].handler
            handler.dispatchBurst { flush in
                withoutActuallyEscaping(outer) { outer in
                    withoutActuallyEscaping(flush) { flush in
                        let both = { outer(); flush() }
                        if i == routes.count { body(both) } else { nest(i + 1, both) }
                    }
                }
            }
        }
        nest(0, {})
    }
}
