import NIOCore
import SwerveProto
import SwerveTransport
import Synchronization
import SwerveStatus

/// A client for the Open Inference Protocol (KServe v2) gRPC service and the gRPC health
/// service, as Swerve, Triton and any KServe v2 server speak them.
///
/// One client holds one or more HTTP/2 connections; calls are spread over them round-robin,
/// and any number of calls run concurrently (each is one HTTP/2 stream). Every method throws
/// ``GRPCStatus``: the server's status when it answers non-OK, UNAVAILABLE when the connection
/// is lost, DEADLINE_EXCEEDED when the timeout passes, INVALID_ARGUMENT for a request the client
/// refuses to send, INTERNAL for a response it cannot decode.
public final class SwerveClient: Sendable {
    /// The gRPC method paths this client calls.
    public enum Method {
        public static let serverLive = "/inference.GRPCInferenceService/ServerLive"
        public static let serverReady = "/inference.GRPCInferenceService/ServerReady"
        public static let modelReady = "/inference.GRPCInferenceService/ModelReady"
        public static let serverMetadata = "/inference.GRPCInferenceService/ServerMetadata"
        public static let modelMetadata = "/inference.GRPCInferenceService/ModelMetadata"
        public static let modelInfer = "/inference.GRPCInferenceService/ModelInfer"
        public static let modelConfig = "/inference.GRPCInferenceService/ModelConfig"
        public static let modelStatistics = "/inference.GRPCInferenceService/ModelStatistics"
        public static let repositoryIndex = "/inference.GRPCInferenceService/RepositoryIndex"
        public static let repositoryModelLoad = "/inference.GRPCInferenceService/RepositoryModelLoad"
        public static let repositoryModelUnload = "/inference.GRPCInferenceService/RepositoryModelUnload"
        public static let healthCheck = "/grpc.health.v1.Health/Check"
        public static let healthWatch = "/grpc.health.v1.Health/Watch"
        public static let pathStatistics = "/swerve.v1.ServingInsights/PathStatistics"
        public static let rolloutStatistics = "/swerve.v1.ServingInsights/RolloutStatistics"
        public static let drift = "/swerve.v1.ServingInsights/Drift"
        public static let appendLabels = "/swerve.v1.Feedback/AppendLabels"
        public static let registryWatch = "/swerve.v1.Registry/Watch"
        public static let registryFetchVersion = "/swerve.v1.Registry/FetchVersion"
        public static let registryGetLabels = "/swerve.v1.Registry/GetLabels"
        public static let registrySetLabels = "/swerve.v1.Registry/SetLabels"
        public static let registrySetVersionStatus = "/swerve.v1.Registry/SetVersionStatus"
        public static let registryGetVersionStatus = "/swerve.v1.Registry/GetVersionStatus"
    }

    private let connections: [GRPCClientConnection]
    private let nextConnection = Atomic<Int>(0)
    /// Applied to every call that passes no timeout of its own; nil means no deadline.
    public let defaultTimeout: Duration?
    /// Metadata (headers) sent with every call, e.g. `("authorization", "Bearer …")`.
    public let metadata: [(String, String)]
    /// Metadata of the calls that change the server's state (``loadModel(name:timeout:)``,
    /// ``unloadModel(name:timeout:)``): `metadata` plus `authorization: Bearer <adminToken>`
    /// when the client was given an admin token. Other calls never carry the token.
    let controlMetadata: [(String, String)]

    private init(
        connections: [GRPCClientConnection], defaultTimeout: Duration?, metadata: [(String, String)], adminToken: String?,
        routeKey: Bool
    ) {
        self.connections = connections
        self.sendsRouteKey = routeKey
        self.defaultTimeout = defaultTimeout
        self.metadata = metadata
        if let adminToken {
            controlMetadata = metadata.filter { $0.0.lowercased() != "authorization" } + [("authorization", "Bearer \(adminToken)")]
        } else {
            controlMetadata = metadata
        }
    }

    /// Whether ModelInfer calls carry ``routeKeyHeader`` (see ``routeKey(serializedRequest:)``).
    public let sendsRouteKey: Bool

    /// The number of HTTP/2 connections calls are spread over.
    public var connectionCount: Int { connections.count }

    /// Connects `connections` HTTP/2 connections (cleartext, prior knowledge) to `host:port`.
    ///
    /// - Parameters:
    ///   - connections: how many TCP connections to open; more than one spreads load over the
    ///     server's event loops.
    ///   - eventLoopGroup: the NIO group to run on; the shared singleton by default.
    ///   - defaultTimeout: the deadline of calls that pass none.
    ///   - metadata: headers sent with every call.
    ///   - maxReceiveMessageSize: the largest response message accepted.
    ///   - adminToken: the server's admin token (`swerve serve --admin-token-file`), sent as
    ///     `authorization: Bearer <token>` with load and unload calls only.
    ///   - tls: HTTP/2 over TLS with these settings; nil: cleartext.
    ///   - routeKey: send ``routeKeyHeader`` with every ModelInfer call, so that a load balancer
    ///     hashing on it (deploy/haproxy) sends equal requests to the same replica and its
    ///     response cache.
    /// - Throws: ``GRPCStatus`` UNAVAILABLE when a connection cannot be established.
    public static func connect(
        host: String, port: Int, connections: Int = 1, eventLoopGroup: (any EventLoopGroup)? = nil,
        defaultTimeout: Duration? = nil, metadata: [(String, String)] = [], maxReceiveMessageSize: Int = 64 << 20,
        adminToken: String? = nil,
        tls: GRPCClientTLS? = nil, routeKey: Bool = false
    ) async throws -> SwerveClient {
        guard connections >= 1 else { throw GRPCStatus(.invalidArgument, "connections must be at least 1, not \(connections)") }
        // Each child returns its outcome rather than throwing, so connections that did open
        // can be closed when another one fails.
        let outcomes = await withTaskGroup(of: Result<GRPCClientConnection, any Error>.self) { group in
            for _ in 0..<connections {
                group.addTask {
                    do {
                        return .success(
                            try await GRPCClientConnection.connect(
                                host: host, port: port, eventLoopGroup: eventLoopGroup, maxReceiveMessageSize: maxReceiveMessageSize,
                                tls: tls))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        var opened: [GRPCClientConnection] = []
        var failure: (any Error)?
        for outcome in outcomes {
            switch outcome {
            case .success(let connection): opened.append(connection)
            case .failure(let error): failure = failure ?? error
            }
        }
        if let failure {
            for connection in opened { await connection.close() }
            throw SwerveClient.status(from: failure)
        }
        return SwerveClient(
            connections: opened, defaultTimeout: defaultTimeout, metadata: metadata, adminToken: adminToken, routeKey: routeKey)
    }

    /// Closes every connection; calls still pending fail with UNAVAILABLE.
    public func close() async {
        for connection in connections { await connection.close() }
    }

    // MARK: - Server and model state

    /// ServerLive: whether the server process is up.
    public func serverLive(timeout: Duration? = nil) async throws -> Bool {
        try await call(Method.serverLive, ServerLiveRequest(), as: ServerLiveResponse.self, timeout: timeout).live
    }

    /// ServerReady: whether the server is ready to serve inference.
    public func serverReady(timeout: Duration? = nil) async throws -> Bool {
        try await call(Method.serverReady, ServerReadyRequest(), as: ServerReadyResponse.self, timeout: timeout).ready
    }

    /// ModelReady: whether `name` (at `version`, or the version the server's policy picks
    /// when empty) is ready to serve.
    public func modelReady(name: String, version: String = "", timeout: Duration? = nil) async throws -> Bool {
        try await call(Method.modelReady, ModelReadyRequest(name: name, version: version), as: ModelReadyResponse.self, timeout: timeout).ready
    }

    /// ServerMetadata: the server's name, version and protocol extensions.
    public func serverMetadata(timeout: Duration? = nil) async throws -> ServerMetadataResponse {
        try await call(Method.serverMetadata, ServerMetadataRequest(), as: ServerMetadataResponse.self, timeout: timeout)
    }

    /// ModelMetadata: a model's versions, platform, and input and output tensors
    /// (KServe datatype names; -1 marks a dynamic dimension).
    public func modelMetadata(name: String, version: String = "", timeout: Duration? = nil) async throws -> ModelMetadataResponse {
        try await call(Method.modelMetadata, ModelMetadataRequest(name: name, version: version), as: ModelMetadataResponse.self, timeout: timeout)
    }

    /// ModelConfig (Triton extension): the configuration the server runs a model with.
    public func modelConfig(name: String, version: String = "", timeout: Duration? = nil) async throws -> ModelConfig {
        try await call(Method.modelConfig, ModelConfigRequest(name: name, version: version), as: ModelConfigResponse.self, timeout: timeout).config
    }

    /// ModelStatistics (Triton extension): counts and cumulative durations per model version.
    /// An empty `name` asks for every model.
    public func modelStatistics(name: String = "", version: String = "", timeout: Duration? = nil) async throws -> [ModelStatistics] {
        try await call(
            Method.modelStatistics, ModelStatisticsRequest(name: name, version: version), as: ModelStatisticsResponse.self,
            timeout: timeout
        ).modelStats
    }

    /// swerve.v1.ServingInsights PathStatistics: how each model version is served.
    public func pathStatistics(name: String = "", version: String = "", timeout: Duration? = nil) async throws -> [VersionPathStatistics] {
        try await call(Method.pathStatistics, PathStatisticsRequest(name: name, version: version), as: PathStatisticsResponse.self,
                       timeout: timeout).models
    }

    /// swerve.v1.ServingInsights RolloutStatistics: per version of `name`, its state, the labels
    /// this server routes to it, and the rollout evidence (counters since it loaded).
    public func rolloutStatistics(name: String, timeout: Duration? = nil) async throws -> RolloutStatisticsResponse {
        try await call(Method.rolloutStatistics, RolloutStatisticsRequest(name: name), as: RolloutStatisticsResponse.self, timeout: timeout)
    }

    /// swerve.v1.ServingInsights Drift: per ready version with a drift monitor (of `name`, or
    /// every model for ""), its windows of sampled inputs and outputs beside its reference.
    public func drift(name: String = "", version: String = "", timeout: Duration? = nil) async throws -> [VersionDrift] {
        try await call(Method.drift, DriftRequest(name: name, version: version), as: DriftResponse.self, timeout: timeout).versions
    }

    /// swerve.v1.Feedback AppendLabels: labels for earlier ModelInfer requests of `model` (by
    /// their request ids), joined with the logged predictions; one outcome per label, in order.
    public func appendLabels(model: String, labels: [LabelFeedback], timeout: Duration? = nil) async throws -> AppendLabelsResponse {
        try await call(Method.appendLabels, AppendLabelsRequest(modelName: model, labels: labels), as: AppendLabelsResponse.self, timeout: timeout)
    }

    /// RepositoryIndex (Triton extension): every model version the repository holds, with its
    /// state (e.g. READY, UNAVAILABLE, LOADING) and the reason for it. With `readyOnly`, only
    /// the versions ready to serve.
    public func repositoryIndex(readyOnly: Bool = false, timeout: Duration? = nil) async throws -> [RepositoryIndexResponse.ModelIndex] {
        try await call(
            Method.repositoryIndex, RepositoryIndexRequest(ready: readyOnly), as: RepositoryIndexResponse.self, timeout: timeout
        ).models
    }

    /// RepositoryModelLoad (Triton extension): loads (or reloads) `name` from the repository.
    /// Carries the admin token, if the client has one; a server with a token answers
    /// UNAUTHENTICATED without it and PERMISSION_DENIED with another.
    public func loadModel(name: String, timeout: Duration? = nil) async throws {
        try Self.refuseNUL(name)
        _ = try await call(Method.repositoryModelLoad, RepositoryModelLoadRequest(modelName: name), as: EmptyMessage.self,
                           timeout: timeout, metadata: controlMetadata)
    }

    /// RepositoryModelUnload (Triton extension): unloads every version of `name`. Carries the
    /// admin token, if the client has one (see ``loadModel(name:timeout:)``).
    public func unloadModel(name: String, timeout: Duration? = nil) async throws {
        try Self.refuseNUL(name)
        _ = try await call(Method.repositoryModelUnload, RepositoryModelUnloadRequest(modelName: name), as: EmptyMessage.self,
                           timeout: timeout, metadata: controlMetadata)
    }

    /// protobuf-c ends a string at its first NUL, so "dense\0x" would go out as "dense" and
    /// load or unload another model than the caller named: such a name is refused unsent.
    private static func refuseNUL(_ name: String) throws {
        if name.utf8.contains(0) {
            throw GRPCStatus(.invalidArgument, "model name contains a NUL byte; it was not sent (it would arrive cut at the NUL)")
        }
    }

    // MARK: - Health

    /// grpc.health.v1 Check: the serving status of `service` ("" for the whole server).
    public func healthCheck(service: String = "", timeout: Duration? = nil) async throws -> HealthCheckResponse.ServingStatus {
        try await call(Method.healthCheck, HealthCheckRequest(service: service), as: HealthCheckResponse.self, timeout: timeout).status
    }

    /// grpc.health.v1 Watch: the serving status of `service` now, then each time it changes.
    /// Stopping the iteration (or cancelling its task) ends the call.
    public func healthWatch(service: String = "") -> some AsyncSequence<HealthCheckResponse.ServingStatus, any Error> {
        connection().serverStreaming(Method.healthWatch, HealthCheckRequest(service: service).serializedBytes(), metadata: metadata)
            .map { bytes throws -> HealthCheckResponse.ServingStatus in
                do {
                    return try HealthCheckResponse(serializedBytes: bytes).status
                } catch {
                    throw GRPCStatus(.internal, "cannot decode HealthCheckResponse from \(Method.healthWatch): \(error)")
                }
            }
    }

    // MARK: - Inference

    /// ModelInfer with a request message.
    public func modelInfer(_ request: ModelInferRequest, timeout: Duration? = nil) async throws -> ModelInferResponse {
        let bytes = try await modelInfer(serialized: request.serializedBytes(), timeout: timeout)
        do {
            return try ModelInferResponse(serializedBytes: bytes)
        } catch {
            throw GRPCStatus(.internal, "cannot decode ModelInferResponse from \(Method.modelInfer): \(error)")
        }
    }

    /// ModelInfer with an already serialized `ModelInferRequest`, returning the serialized
    /// response undecoded. For load generators: encode a request once and send it many times.
    public func modelInfer(serialized request: [UInt8], timeout: Duration? = nil) async throws -> [UInt8] {
        guard sendsRouteKey else { return try await unary(Method.modelInfer, request, timeout: timeout) }
        return try await unary(
            Method.modelInfer, request, timeout: timeout,
            metadata: metadata + [(Self.routeKeyHeader, Self.routeKey(serializedRequest: request))])
    }

    // MARK: - Route keys

    /// The header a cache-affine load balancer hashes on (deploy/haproxy/haproxy.cfg.in).
    public static let routeKeyHeader = "x-swerve-route-key"

    /// The route key of a serialized ModelInfer request: FNV-1a (64 bits) of its bytes, as 16
    /// lowercase hex digits. The message holds the model name, version and input tensors, so
    /// equal requests get equal keys in every process (no per-process seed) and a balancer
    /// hashing on the key sends them to the replica whose cache holds the answer. Clients in
    /// other languages may compute any stable hash of model and inputs; only the stability
    /// matters, not agreement with this one.
    public static func routeKey(serializedRequest request: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in request {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { text[i] = digits[Int((hash >> UInt64(60 - 4 * i)) & 0xf)] }
        return String(decoding: text, as: UTF8.self)
    }

    /// Runs `model` on `inputs` and decodes the outputs.
    ///
    /// - Parameters:
    ///   - version: a version number, or "" for the one the server's policy picks.
    ///   - inputs: input tensors by name.
    ///   - outputs: the outputs to return; nil for all of them.
    ///   - raw: send tensors as `raw_input_contents` (little-endian bytes; the default and the
    ///     faster path) rather than typed `contents`.
    /// - Throws: ``GRPCStatus``; INVALID_ARGUMENT without a call when a tensor's values do not
    ///   match its datatype or shape.
    public func infer(
        model: String, version: String = "", inputs: [String: ClientTensor], outputs: [String]? = nil,
        raw: Bool = true, timeout: Duration? = nil
    ) async throws -> InferResult {
        let request = try Self.makeInferRequest(model: model, version: version, inputs: inputs, outputs: outputs, raw: raw)
        return try InferResult(try await modelInfer(request, timeout: timeout))
    }

    /// Builds the ModelInfer request ``infer(model:version:inputs:outputs:raw:timeout:)`` sends;
    /// inputs are ordered by name. Throws INVALID_ARGUMENT for a malformed tensor.
    public static func makeInferRequest(
        model: String, version: String = "", inputs: [String: ClientTensor], outputs: [String]? = nil, raw: Bool = true
    ) throws -> ModelInferRequest {
        var request = ModelInferRequest()
        request.modelName = model
        request.modelVersion = version
        for (name, tensor) in inputs.sorted(by: { $0.key < $1.key }) {
            var input = ModelInferRequest.InputTensor(name: name, datatype: tensor.datatype, shape: tensor.shape)
            do {
                if raw {
                    request.rawInputContents.append(try tensor.rawBytes())
                } else {
                    input.contents = try tensor.typedContents()
                }
            } catch let status as GRPCStatus {
                throw GRPCStatus(status.code, "input '\(name)': \(status.message)")
            }
            request.inputs.append(input)
        }
        request.outputs = (outputs ?? []).map { ModelInferRequest.RequestedOutput(name: $0) }
        return request
    }

    // MARK: - Calls

    func connection() -> GRPCClientConnection {
        if connections.count == 1 { return connections[0] }
        let n = nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue
        return connections[Int(UInt(bitPattern: n) % UInt(connections.count))]
    }

    private func unary(_ method: String, _ request: [UInt8], timeout: Duration?, metadata: [(String, String)]? = nil) async throws -> [UInt8] {
        do {
            return try await connection().unary(method, request, timeout: timeout ?? defaultTimeout, metadata: metadata ?? self.metadata)
        } catch {
            throw Self.status(from: error)
        }
    }

    /// One unary call (extensions in other files add services: RegistryClient.swift).
    func call<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: String, _ request: Request, as: Response.Type, timeout: Duration?, metadata: [(String, String)]? = nil
    ) async throws -> Response {
        let bytes = try await unary(method, request.serializedBytes(), timeout: timeout, metadata: metadata)
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw GRPCStatus(.internal, "cannot decode \(Response.self) from \(method): \(error)")
        }
    }

    /// Any error as a status: transports throw statuses already; anything else is UNKNOWN.
    static func status(from error: any Error) -> GRPCStatus {
        if let status = error as? GRPCStatus { return status }
        if error is CancellationError { return GRPCStatus(.cancelled, "cancelled") }
        return GRPCStatus(.unknown, "\(error)")
    }
}
