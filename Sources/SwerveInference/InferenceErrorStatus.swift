import SwerveStatus

extension InferenceError: RPCErrorConvertible {
    /// Tensors that do not fit the model are the caller's to fix; anything else reaching a
    /// caller is Swerve's own failure.
    public var rpcErrorCode: GRPCStatusCode { code == .invalidInput ? .invalidArgument : .internal }
    public var rpcErrorMessage: String { message }
}
