import Foundation
import Logging
import SwerveRPC
import SwerveRepository
import SwerveTransport

/// What `swerve registry` runs.
public struct RegistryOptions: Sendable {
    public var repository: String
    public var host = "127.0.0.1"
    public var grpcPort = 8004
    public var eventLoopThreads = 1
    /// Who may call the registry: `--admin-token-file`, `--insecure-control-plane`. Without a token
    /// file the registry listens on loopback only, unless told it is insecure.
    public var controlPlane = ControlPlaneOptions()
    /// gRPC over TLS (`--tls-cert/--tls-key`); nil: cleartext.
    public var tls: GRPCServerTLS? = nil
    public var limits = RegistryLimits()
    /// A stream whose client's flow-control window lets nothing through for this long (a Watch or
    /// FetchVersion client that does not read) is reset (`--response-window-timeout`).
    public var responseWindowTimeout: Duration = GRPCServerConfiguration().responseWindowTimeout ?? .seconds(30)
    /// How long FetchVersion streams in flight may run after the shutdown's GOAWAY.
    public var shutdownTimeout: Duration = .seconds(10)

    public init(repository: String) { self.repository = repository }
}

public enum RegistryRunner {
    /// Serves swerve.v1.Registry over `options.repository` until SIGTERM/SIGINT: then Watch
    /// streams end with UNAVAILABLE (followers reconnect), the listener closes (GOAWAY), transfers
    /// in flight get `shutdownTimeout` to finish, and it returns.
    public static func run(options: RegistryOptions, logger: Logger) async throws {
        let signals = TerminationSignals()
        let controlPlane = try options.controlPlane.makeGuard(
            host: options.host, port: options.grpcPort,
            calls: "download every model file, and move version labels and statuses",
            service: "registry", logger: logger)
        let repository = URL(fileURLWithPath: options.repository, isDirectory: true).standardizedFileURL
        _ = try ModelRepository(root: repository).modelNames()   // fail fast on a missing repository

        let service = RegistryService(repository: repository, limits: options.limits, logger: logger, controlPlane: controlPlane)
        var config = GRPCServerConfiguration()
        config.host = options.host
        config.port = options.grpcPort
        config.eventLoopThreads = options.eventLoopThreads
        config.tls = options.tls
        config.responseWindowTimeout = options.responseWindowTimeout
        let grpc = GRPCServer(configuration: config, handler: service, logger: logger)
        try await grpc.start()
        let banner = "swerve registry: repository \(repository.path), listening on \(options.host):\(grpc.port) (gRPC swerve.v1.Registry)\n"
        FileHandle.standardOutput.write(Data(banner.utf8))

        let sig = await signals.next()
        logger.info("registry shutting down", metadata: ["signal": "\(sig)"])
        service.shutdown()
        await grpc.shutdownGracefully(timeout: options.shutdownTimeout)
        logger.info("registry stopped")
    }
}
