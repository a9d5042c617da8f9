import Dispatch
import Foundation
import Logging
import SwerveRPC
import SwerveRegistry
import SwerveRepository
import SwerveTransport

/// What `swerve trainer` runs.
public struct TrainerOptions: Sendable {
    public var repository: String
    public var stateDirectory: String?
    public var host = "127.0.0.1"
    public var grpcPort = 8003
    public var eventLoopThreads = 1
    /// How long shutdown waits for running jobs to reach an epoch boundary.
    public var shutdownTimeout: TimeInterval = 30
    /// Who may submit and cancel jobs, append examples, promote and roll back:
    /// `--admin-token-file`, `--insecure-control-plane`. Without a token file the trainer listens
    /// on loopback only, unless told it is insecure.
    public var controlPlane = ControlPlaneOptions()
    /// gRPC over TLS with this certificate and key (`--tls-cert/--tls-key`); nil: cleartext.
    public var tls: GRPCServerTLS? = nil

    public init(repository: String) { self.repository = repository }
}

public enum TrainerRunner {
    /// Runs the training service until SIGTERM/SIGINT: then it stops accepting jobs, lets running
    /// jobs stop at their next epoch boundary (continuous jobs keep their last durable
    /// checkpoint), closes the example logs and returns.
    public static func run(options: TrainerOptions, logger: Logger) async throws {
        let signals = TerminationSignals()
        // Before anything is created or bound.
        let controlPlane = try options.controlPlane.makeGuard(
            host: options.host, port: options.grpcPort,
            calls: "submit and cancel training jobs, append examples and promote or roll back model versions",
            service: "trainer", logger: logger)

        let repository = URL(fileURLWithPath: options.repository, isDirectory: true).standardizedFileURL
        try FileManager.default.createDirectory(at: repository, withIntermediateDirectories: true)
        let state = options.stateDirectory.map { URL(fileURLWithPath: $0, isDirectory: true) }
            ?? ModelRepository(root: repository).trainerStateDirectory
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)

        let service = TrainerService(repository: repository, stateDirectory: state, logger: logger, controlPlane: controlPlane)
        var config = GRPCServerConfiguration()
        config.host = options.host
        config.port = options.grpcPort
        config.eventLoopThreads = options.eventLoopThreads
        config.tls = options.tls
        config.maxReceiveMessageSize = 64 << 20
        // A message of that size must fit the connection's request budget (with its prefix).
        config.maxConnectionRequestBytes = max(config.maxConnectionRequestBytes, 65 << 20)
        // The registry replicas follow (swerve.v1.Registry) beside the Trainer, on the same port and
        // behind the same admin token.
        let registry = RegistryService(repository: repository, logger: logger, controlPlane: controlPlane)
        let router = ServiceRouter([(prefix: RegistryService.methodPrefix, handler: registry)], fallback: service)
        let grpc = GRPCServer(configuration: config, handler: router, logger: logger)
        try await grpc.start()
        service.resumeContinuousJobs()
        let banner = "swerve trainer: repository \(repository.path), state \(state.path), listening on \(options.host):\(grpc.port) (gRPC swerve.v1.Trainer, swerve.v1.Registry)\n"
        FileHandle.standardOutput.write(Data(banner.utf8))

        let sig = await signals.next()
        logger.info("trainer shutting down", metadata: ["signal": "\(sig)"])
        registry.shutdown()
        let timeout = options.shutdownTimeout
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                service.shutdown(timeout: timeout)
                done.resume()
            }
        }
        await grpc.shutdownGracefully(timeout: .seconds(5))
        logger.info("trainer stopped")
    }
}
