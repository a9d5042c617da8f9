/// An error that knows the gRPC status it stands for, as grpc-swift 2's `RPCErrorConvertible`
/// has it. Each layer's error type conforms in its own module and states its code there, so
/// turning any error into a status is one generic step (`GRPCStatus(converting:)`) instead of
/// a type switch that has to know every layer.
public protocol RPCErrorConvertible: Error {
    /// The status code a caller receives for this error.
    var rpcErrorCode: GRPCStatusCode { get }
    /// The `grpc-message` a caller receives: something a person can act on.
    var rpcErrorMessage: String { get }
}

extension GRPCStatus: RPCErrorConvertible {
    public var rpcErrorCode: GRPCStatusCode { code }
    public var rpcErrorMessage: String { message }
}

extension GRPCStatus {
    /// The status a call that failed with `error` ends with: the error's own status when it
    /// states one, INTERNAL (with the error's description) when it does not.
    public init(converting error: any Error) {
        if let status = error as? GRPCStatus {
            self = status
        } else if let convertible = error as? any RPCErrorConvertible {
            self.init(convertible.rpcErrorCode, convertible.rpcErrorMessage)
        } else {
            self.init(.internal, "\(error)")
        }
    }
}
