import Foundation
import Logging
import SwerveClient
import SwerveRPC
import SwerveRepository
import SwerveServer
import SwerveServing
import SwerveTransport
import Synchronization

/// A model to put in an in-process server's repository.
public enum TestModel: Sendable {
    /// `examples/repository/<name>` as it is committed: config.json and every version.
    case example(String)
    /// `Tests/SwerveInferenceTests/Fixtures/<fixture>.onnx` as version(s) of model `name` (the
    /// fixture's own name when nil), with `config` written as config.json when given.
    case fixture(String, as: String? = nil, versions: [Int] = [1], config: String? = nil)
    /// An ONNX model given as bytes (e.g. built in the test with SwerveProto's `ONNXModel`), as
    /// version(s) of model `name`, with `config` written as config.json when given.
    case onnx([UInt8], as: String, versions: [Int] = [1], config: String? = nil)
    /// Any model directory (config.json and version folders), copied as model `name`.
    case directory(URL, as: String)

    /// The model's name in the repository.
    public var name: String {
        switch self {
        case .example(let name): name
        case .fixture(let fixture, let name, _, _): name ?? fixture
        case .onnx(_, let name, _, _): name
        case .directory(_, let name): name
        }
    }

    /// Writes the model into `repository`.
    public func install(into repository: URL) throws {
        let fm = FileManager.default
        let destination = repository.appendingPathComponent(name, isDirectory: true)
        switch self {
        case .example(let name):
            try fm.copyItem(at: PackagePaths.exampleRepository.appendingPathComponent(name), to: destination)
        case .directory(let source, _):
            try fm.copyItem(at: source, to: destination)
        case .fixture(let fixture, _, let versions, let config):
            let bytes = try Data(contentsOf: PackagePaths.inferenceFixture(fixture))
            try Self.writeModel(bytes, versions: versions, config: config, to: destination)
        case .onnx(let bytes, _, let versions, let config):
            try Self.writeModel(Data(bytes), versions: versions, config: config, to: destination)
        }
    }

    private static func writeModel(_ model: Data, versions: [Int], config: String?, to destination: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: destination, withIntermediateDirectories: true)
        for version in versions {
            let folder = destination.appendingPathComponent(String(version), isDirectory: true)
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
            try model.write(to: folder.appendingPathComponent("model.onnx"))
        }
        if let config {
            try Data(config.utf8).write(to: destination.appendingPathComponent("config.json"))
        }
    }
}

/// Paths inside this package's checkout, found from this source file's location, so tests can
/// read `examples/` and the ONNX fixtures wherever the checkout is.
public enum PackagePaths {
    /// The package's root directory (the one with Package.swift).
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // SwerveTesting
        .deletingLastPathComponent()  // Sources
        .deletingLastPathComponent()

    /// `examples/repository`: the committed example models.
    public static var exampleRepository: URL { root.appendingPathComponent("examples/repository", isDirectory: true) }

    /// `Tests/SwerveInferenceTests/Fixtures`: ONNX models with onnxruntime's outputs beside them.
    public static var inferenceFixtures: URL { root.appendingPathComponent("Tests/SwerveInferenceTests/Fixtures", isDirectory: true) }

    /// The fixture `<name>.onnx`.
    public static func inferenceFixture(_ name: String) -> URL { inferenceFixtures.appendingPathComponent("\(name).onnx") }
}

/// Swerve's server, assembled in this process the way `swerve serve` assembles it (a
/// `ModelManager` over a repository, the `InferenceService`, a `GRPCServer`), on 127.0.0.1 and a
/// port the system picks, with a connected ``SwerveClient`` and a raw ``GRPCClientConnection``
/// for sending arbitrary bytes.
///
/// The repository is a temporary directory of its own (removed with the server), so a test may
/// add, change and remove models in it and load them with RepositoryModelLoad. There is no metrics
/// endpoint and no repository poller. Prefer ``withInProcessServer(_:loadModels:logger:configure:_:)``,
/// which always stops the server; with ``start(_:loadModels:logger:configure:)`` call ``stop()``.
///
/// ```swift
/// try await withInProcessServer([.example("breast_cancer_logreg")]) { server in
///     let ready = try await server.client.modelReady(name: "breast_cancer_logreg")
///     #expect(ready)
/// }
/// ```
public final class InProcessServer: Sendable {
    /// The repository directory the manager serves.
    public let repository: URL
    /// The model manager (loading, versions, statistics).
    public let manager: ModelManager
    /// The service answering every call.
    public let service: InferenceService
    /// The gRPC server.
    public let server: GRPCServer
    /// A client connected to the server (one connection, 30 s default deadline).
    public let client: SwerveClient
    /// A second, raw connection: any method, any bytes.
    public let connection: GRPCClientConnection

    private let repositoryDirectory: TemporaryDirectory
    private let stopped = Mutex(false)

    private init(
        repositoryDirectory: TemporaryDirectory, manager: ModelManager, service: InferenceService, server: GRPCServer,
        client: SwerveClient, connection: GRPCClientConnection
    ) {
        self.repositoryDirectory = repositoryDirectory
        self.repository = repositoryDirectory.url
        self.manager = manager
        self.service = service
        self.server = server
        self.client = client
        self.connection = connection
    }

    /// The port the server listens on (on 127.0.0.1).
    public var port: Int { server.port }

    /// Starts a server over a new repository holding `models`.
    ///
    /// - Parameters:
    ///   - loadModels: load every model and report ready before returning, as `swerve serve`
    ///     does at start-up; when false nothing is loaded and ServerReady is false.
    ///   - logger: the server's logger; by default it discards everything.
    ///   - configure: changes to the gRPC server's settings (host and port stay 127.0.0.1:0).
    ///   - adminToken: the server's admin token (as `--admin-token-file`): load and unload then
    ///     need it. ``client`` carries it; ``connection`` and ``makeClient(connections:)`` do not.
    public static func start(
        _ models: [TestModel] = [], loadModels: Bool = true, logger: Logger? = nil,
        configure: (inout GRPCServerConfiguration) -> Void = { _ in }, adminToken: String? = nil
    ) async throws -> InProcessServer {
        let directory = try TemporaryDirectory(prefix: "swerve-repository")
        for model in models { try model.install(into: directory.url) }
        let logger = logger ?? Logger(label: "swerve.test-server", factory: { _ in SwiftLogNoOpLogHandler() })

        let manager = ModelManager(repository: ModelRepository(path: directory.path), logger: logger)
        let controlPlane = ControlPlaneGuard(authorization: try adminToken.map { try AdminAuthorization(token: $0) }, logger: logger, service: "inference")
        let service = InferenceService(manager: manager, logger: logger, controlPlane: controlPlane)
        var configuration = GRPCServerConfiguration()
        configuration.eventLoopThreads = 1
        configure(&configuration)
        configuration.host = "127.0.0.1"
        configuration.port = 0
        let server = GRPCServer(configuration: configuration, handler: service, logger: logger)
        try await server.start()

        do {
            if loadModels {
                try manager.loadAll()
                service.setReady(true)
            }
            let client = try await SwerveClient.connect(host: "127.0.0.1", port: server.port, defaultTimeout: .seconds(30), adminToken: adminToken)
            let connection: GRPCClientConnection
            do {
                connection = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            } catch {
                await client.close()
                throw error
            }
            return InProcessServer(
                repositoryDirectory: directory, manager: manager, service: service, server: server,
                client: client, connection: connection)
        } catch {
            await server.shutdownGracefully(timeout: .seconds(5))
            manager.shutdown()
            throw error
        }
    }

    /// Closes the clients, then shuts down as `swerve serve` does on SIGTERM: not ready, GOAWAY,
    /// in-flight calls finish (for up to `timeout`), the models' workers drain. Idempotent.
    public func stop(timeout: Duration = .seconds(5)) async {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        await client.close()
        await connection.close()
        service.beginShutdown()
        await server.shutdownGracefully(timeout: timeout)
        manager.shutdown()
    }

    /// Opens another client to this server (closed by the caller).
    public func makeClient(connections: Int = 1) async throws -> SwerveClient {
        try await SwerveClient.connect(host: "127.0.0.1", port: port, connections: connections, defaultTimeout: .seconds(30))
    }
}

/// Starts an ``InProcessServer`` holding `models`, runs `body` with it, and stops it whether
/// `body` returns or throws; the repository directory is removed afterwards.
///
/// When every `try` in `body` is inside `#expect(...)`, Swift cannot see that the closure throws:
/// spell it out, `{ server async throws in … }`.
public func withInProcessServer<R>(
    _ models: [TestModel] = [], loadModels: Bool = true, logger: Logger? = nil,
    configure: (inout GRPCServerConfiguration) -> Void = { _ in }, adminToken: String? = nil,
    _ body: (InProcessServer) async throws -> R
) async throws -> R {
    let server = try await InProcessServer.start(models, loadModels: loadModels, logger: logger, configure: configure, adminToken: adminToken)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
