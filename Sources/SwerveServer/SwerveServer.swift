import Dispatch
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import SwerveRPC
import SwerveRegistry
import SwerveRepository
import SwerveServing
import SwerveTransport

/// Everything `swerve serve` runs: the gRPC server, the metrics endpoint, the model manager, and
/// graceful shutdown on SIGTERM/SIGINT (GOAWAY, finish what is in flight, drain the batchers).
public struct ServerOptions: Sendable {
    public var repository: String
    public var host = "127.0.0.1"
    public var grpcPort = 8001
    public var metricsPort = 8002
    /// The transport's settings and limits (message size, streams, event loops, connection
    /// limits, budgets and timeouts; defaults and meanings in `GRPCServerConfiguration`). Its
    /// host and port are taken from `host` and `grpcPort`.
    public var transport = GRPCServerConfiguration()
    /// Seconds between repository scans for new versions; nil = only at start-up and on RepositoryModelLoad.
    public var pollInterval: Double?
    /// How long calls in flight may take to finish after the GOAWAY of a shutdown
    /// (`--shutdown-timeout`, 30 s); what is left then is cancelled.
    public var shutdownTimeout: Duration = .seconds(30)
    /// From SIGTERM/SIGINT to the GOAWAY (`--drain-seconds`, 5 s): the server is not ready
    /// (HTTP 503, gRPC health NOT_SERVING) but answers every request, so a load balancer's
    /// health checks take it out of rotation before a connection is closed.
    public var drainDelay: Duration = .seconds(5)
    /// Server-wide response cache budget, and the largest share one model version may take.
    public var cacheBytes = 256 << 20
    public var cacheShare = 0.25
    /// The most bytes of a model.onnx read (`--max-model-bytes`, 2 GiB).
    public var maxModelBytes = ModelManager.LoadOptions().maxModelBytes
    /// How long one model's load may take before it is abandoned and reported failed
    /// (`--model-load-timeout`, 600 s).
    public var modelLoadTimeout = ModelManager.LoadOptions().loadTimeout
    /// Triton's strict readiness (`--strict-readiness`, on): not ready while an expected model is not.
    public var strictReadiness = true
    /// Who may call RepositoryModelLoad/Unload: `--admin-token-file`, `--insecure-control-plane`.
    /// Without a token file the server listens on loopback only, unless told it is insecure.
    public var controlPlane = ControlPlaneOptions()
    /// Follow a registry (`--follow HOST:PORT` and its `--follow-*` flags): the repository is then
    /// this replica's local copy, kept in line with the registry; nil: serve the folder as it is.
    public var follow: RegistryFollowOptions? = nil
    /// Where models with `prediction_log` in config.json log sampled requests
    /// (`--prediction-log-dir`; nil: `<repository>/.predictions`).
    public var predictionLogDirectory: String? = nil
    /// The trainer that labels joined with logged predictions go to (`--feedback-trainer
    /// HOST:PORT`); nil: labels only feed the online metrics.
    public var feedbackTrainer: (host: String, port: Int)? = nil
    /// AppendExamples calls in flight per AppendLabels call (`--feedback-concurrency`, 8; 1 keeps
    /// a call's examples in label order in the trainer's log).
    public var feedbackConcurrency = InferenceService.defaultFeedbackConcurrency

    public init(repository: String) { self.repository = repository }
}

public enum SwerveServerRunner {
    /// Runs until SIGTERM or SIGINT, then shuts down gracefully and returns.
    public static func run(options: ServerOptions, registry: PrometheusCollectorRegistry, logger: Logger) async throws {
        // Take the signals over before anything starts, so an early SIGTERM is not fatal.
        let signals = TerminationSignals()

        // Before anything binds: no token on a non-loopback address is refused, so is a bad token file.
        let controlPlane = try options.controlPlane.makeGuard(
            host: options.host, port: options.grpcPort, calls: "load and unload models (RepositoryModelLoad/Unload)",
            service: "inference", logger: logger)

        let repository = ModelRepository(path: options.repository)
        if options.follow != nil {
            // A follower's local copy may start empty.
            try FileManager.default.createDirectory(at: repository.root, withIntermediateDirectories: true)
        }
        _ = try repository.modelNames()   // fail fast on a missing repository
        var loadOptions = ModelManager.LoadOptions()
        loadOptions.maxModelBytes = options.maxModelBytes
        loadOptions.loadTimeout = options.modelLoadTimeout
        let manager = ModelManager(repository: repository, logger: logger,
                                   cacheBudget: CacheBudget(totalBytes: options.cacheBytes, perModelFraction: options.cacheShare),
                                   options: loadOptions)
        let service = InferenceService(manager: manager, logger: logger, strictReadiness: options.strictReadiness,
                                       controlPlane: controlPlane,
                                       predictionLogRoot: options.predictionLogDirectory.map { URL(fileURLWithPath: $0, isDirectory: true) },
                                       feedbackTrainer: options.feedbackTrainer, feedbackConcurrency: options.feedbackConcurrency)

        // 1 from the termination signal on: the replica is draining (readiness says why).
        let draining = Gauge(label: "swerve_draining")
        draining.record(0)

        var config = options.transport
        config.host = options.host
        config.port = options.grpcPort
        let listenerMetrics = ListenerMetrics()
        config.listenerObserver = listenerMetrics
        config.connectionAgeObserver = { listenerMetrics.connectionAged() }
        let grpc = GRPCServer(configuration: config, handler: service, logger: logger)
        try await grpc.start()

        let metricsGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let metrics: MetricsEndpoint
        do {
            metrics = try await MetricsEndpoint.start(
                host: options.host, port: options.metricsPort, registry: registry, group: metricsGroup, logger: logger,
                readiness: { let r = service.readiness(); return (r.ready, r.reason) })
        } catch {
            await grpc.shutdownGracefully(timeout: .seconds(1))
            try? await metricsGroup.shutdownGracefully()
            throw error
        }

        // A follower: what a crash left half-fetched goes before anything reads the folder.
        let follower = options.follow.map { follow in
            RegistryFollower(
                options: follow, repository: repository.root,
                target: RegistryFollowerTarget(
                    load: { try manager.load(model: $0) }, unload: { try manager.unload(model: $0) },
                    // Ready only once the registry's first snapshot is on disk and loaded.
                    snapshotApplied: { service.setReady(true) }),
                logger: logger)
        }
        follower?.removeStaleTemporaries()

        // ServerLive answers while models load; ServerReady can turn true once start-up loading is
        // done (models load in parallel, each within the load timeout), then follows the models.
        // A follower serves what its local copy holds at once but reports ready only after it has
        // applied the registry's first snapshot.
        try manager.loadAll()
        if let follower {
            follower.start()
        } else {
            service.setReady(true)
        }
        let ready = manager.index().filter { $0.state == .ready }
        let readiness = service.readiness()
        if readiness.ready {
            logger.info("swerve ready", metadata: [
                "grpc": "\(options.host):\(grpc.port)", "metrics": "http://\(options.host):\(metrics.port)/metrics",
                "ready_versions": "\(ready.count)", "repository": "\(repository.root.path)"])
        } else {
            logger.warning("swerve started but is not ready", metadata: [
                "grpc": "\(options.host):\(grpc.port)", "reason": "\(readiness.reason)",
                "strict_readiness": "\(options.strictReadiness)", "ready_versions": "\(ready.count)"])
        }
        let banner = "swerve: serving \(ready.count) model version(s) from \(repository.root.path) on \(options.host):\(grpc.port) (gRPC), metrics on http://\(options.host):\(metrics.port)/metrics\n"
        FileHandle.standardOutput.write(Data(banner.utf8))

        let poller = options.pollInterval.map { RepositoryPoller(manager: manager, interval: $0, logger: logger) }
        poller?.start()

        // Draining, in a fixed order: not ready at once, answer everything for the drain delay
        // (a balancer's health checks take the replica out of rotation meanwhile), then GOAWAY,
        // then let calls in flight finish, then stop. A request is never refused while the
        // replica may still be in rotation: a balancer cannot retry a gRPC error (trailers).
        let sig = await signals.next()
        let clock = ContinuousClock()
        let began = clock.now
        service.beginShutdown()
        draining.record(1)
        poller?.stop()
        follower?.cancel()
        logger.info("draining: not ready (HTTP 503, health NOT_SERVING), still answering every request", metadata: [
            "signal": "\(sig)", "drain_delay": "\(options.drainDelay)", "open_connections": "\(grpc.activeConnectionCount)"])
        if options.drainDelay > .zero {
            let second = await signals.next(within: options.drainDelay)
            if let second {
                logger.info("second signal during the drain delay: closing connections now", metadata: ["signal": "\(second)"])
            }
        }
        logger.info("drain delay over: GOAWAY to every connection, waiting for calls in flight", metadata: [
            "open_connections": "\(grpc.activeConnectionCount)", "shutdown_timeout": "\(options.shutdownTimeout)"])
        // One more signal while calls in flight finish: stop waiting for them.
        let impatience = Task {
            guard let sig = await signals.nextOrCancelled() else { return }
            logger.warning("another signal while calls in flight finish: closing every connection now, cancelling its calls", metadata: [
                "signal": "\(sig)", "open_connections": "\(grpc.activeConnectionCount)"])
            grpc.closeAllConnections()
        }
        await grpc.shutdownGracefully(timeout: options.shutdownTimeout)
        impatience.cancel()
        manager.shutdown()
        service.driftSampling.stop()
        service.predictionLogs.closeAll()  // what was queued is written and fsynced
        await metrics.close()
        try? await metricsGroup.shutdownGracefully()
        let took = clock.now - began
        logger.info("stopped", metadata: ["seconds_since_signal": "\(Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)"])
    }
}
