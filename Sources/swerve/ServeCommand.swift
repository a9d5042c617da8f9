import ArgumentParser
import Logging
import Metrics
import Prometheus
import SwerveRPC
import SwerveRegistry
import SwerveServer
import SwerveTransport

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the models of a repository over gRPC (KServe v2 / Open Inference Protocol).")

    @Option(help: "Model repository: <repo>/<model>/<version>/model.onnx.")
    var repository: String

    @Option(help: "Address to listen on (loopback unless told otherwise).")
    var host = "127.0.0.1"

    @Option(name: .customLong("grpc-port"), help: "gRPC port.")
    var grpcPort = 8001

    @Option(name: .customLong("metrics-port"), help: "Prometheus /metrics port.")
    var metricsPort = 8002

    @Option(name: .customLong("max-receive-message-size"), help: "Largest request message in bytes; larger gets RESOURCE_EXHAUSTED.")
    var maxReceiveMessageSize = 4 * 1024 * 1024

    @Option(name: .customLong("max-concurrent-streams"), help: "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.")
    var maxConcurrentStreams: UInt32 = 1024

    @Option(name: .customLong("max-header-list-bytes"),
            help: "Largest request header list in bytes (names + values + 32 per field), advertised as SETTINGS_MAX_HEADER_LIST_SIZE; larger gets RESOURCE_EXHAUSTED.")
    var maxHeaderListBytes = 16 << 10

    @Option(name: .customLong("event-loops"), help: "Event loop threads (default: one per core).")
    var eventLoops: Int?

    @Option(name: .customLong("poll-interval"), help: "Seconds between repository scans for new versions (default: off).")
    var pollInterval: Double?

    @Option(name: .customLong("cache-bytes"), help: "Server-wide response cache budget in bytes.")
    var cacheBytes = 256 << 20

    @Option(name: .customLong("cache-share"), help: "Largest fraction of --cache-bytes one model version may take.")
    var cacheShare = 0.25

    @Option(name: .customLong("max-connections"), help: "Most gRPC connections open at once; more are accepted and closed at once (default: min(4096, descriptor limit - 128)).")
    var maxConnections: Int?
    @Option(name: .customLong("max-model-bytes"), help: "Largest model.onnx read, in bytes; a larger one (or a FIFO, device, socket or directory) fails that version's load.")
    var maxModelBytes = 2 << 30

    @Option(name: .customLong("model-load-timeout"), help: "Seconds one model's load may take; past it the load is abandoned and reported failed.")
    var modelLoadTimeout: Double = 600

    // Following a registry (swerve.v1.Registry served by `swerve registry` or `swerve trainer`).

    @Option(name: .customLong("follow"),
            help: "HOST:PORT of a registry to follow: --repository is then this replica's local copy, kept in line with the registry's versions, config.json and labels (fetched with SHA-256 checks into .tmp-* folders, renamed, loaded). Not ready until the registry's first snapshot is applied.")
    var follow: String?

    @Option(name: .customLong("follow-token-file"),
            help: "File holding the registry's admin token, sent with every registry call (same format as --admin-token-file).")
    var followTokenFile: String?

    @Flag(name: .customLong("follow-tls"), help: "Connect to the registry over TLS.")
    var followTLS = false

    @Option(name: .customLong("follow-ca-cert"), help: "PEM file of the CA certificates that verify the registry (with --follow-tls; default: the system's).")
    var followCACert: String?

    @Option(name: .customLong("prediction-log-dir"),
            help: "Directory of the prediction logs of models with prediction_log in config.json (default: <repository>/.predictions).")
    var predictionLogDir: String?

    @Option(name: .customLong("feedback-trainer"),
            help: "A trainer (host:port) that labels joined with logged predictions (swerve.v1.Feedback/AppendLabels) go to, as examples of the model keyed by request id (default: none; labels then only feed the online metrics).")
    var feedbackTrainer: String?

    @Option(name: .customLong("feedback-concurrency"),
            help: "AppendExamples calls in flight to the feedback trainer per AppendLabels call (1...64; 1 keeps a call's examples in label order in the trainer's log).")
    var feedbackConcurrency = InferenceService.defaultFeedbackConcurrency

    @Option(name: .customLong("strict-readiness"), help: "true: ServerReady and health are false while any expected model is not ready; false: one ready model is enough.")
    var strictReadiness = true
    // Limits of one connection (what one slow or hostile client may hold).

    @Option(name: .customLong("max-connection-outbound-bytes"),
            help: "Response bytes one connection may have waiting to be sent (queued for the client's flow-control window or unwritten); past it the connection gets GOAWAY(ENHANCE_YOUR_CALM) and is closed.")
    var maxConnectionOutboundBytes = 64 << 20

    @Option(name: .customLong("max-connection-request-bytes"),
            help: "Request-body bytes one connection may hold (arriving, or dispatched until answered); a request past it gets RESOURCE_EXHAUSTED.")
    var maxConnectionRequestBytes = 64 << 20

    @Option(name: .customLong("max-server-request-bytes"),
            help: "Request-body bytes all connections together may hold; a request past it gets RESOURCE_EXHAUSTED.")
    var maxServerRequestBytes = 1 << 30

    @Option(name: .customLong("handshake-timeout"),
            help: "Seconds a new connection has to send the HTTP/2 preface and SETTINGS before it is closed.")
    var handshakeTimeout = 10.0

    @Option(name: .customLong("idle-timeout"),
            help: "Seconds a connection may have no open stream before it gets GOAWAY and is closed.")
    var idleTimeout = 300.0

    @Option(name: .customLong("request-body-timeout"),
            help: "Seconds an incomplete request may receive no bytes before it is answered DEADLINE_EXCEEDED.")
    var requestBodyTimeout = 30.0

    @Option(name: .customLong("max-request-body-duration"),
            help: "Seconds a request body may take from its headers to its end, however it trickles in; past it the request is answered DEADLINE_EXCEEDED.")
    var maxRequestBodyDuration = 120.0

    @Option(name: .customLong("response-window-timeout"),
            help: "Seconds a response may wait with the client's flow-control window letting none of it through before the stream is reset (RST_STREAM ENHANCE_YOUR_CALM).")
    var responseWindowTimeout = 30.0

    @Option(name: .customLong("keepalive-interval"),
            help: "Seconds with nothing read from a connection before the server sends a keepalive PING.")
    var keepaliveInterval = 7200.0

    @Option(name: .customLong("keepalive-timeout"),
            help: "Seconds a keepalive PING may go unacknowledged before the connection is closed.")
    var keepaliveTimeout = 20.0

    // Leaving a load balancer's rotation: the drain order on SIGTERM/SIGINT, and connection age.

    @Option(name: .customLong("drain-seconds"),
            help: "Seconds from SIGTERM/SIGINT to the GOAWAY: not ready (HTTP /v2/health/ready 503, gRPC health NOT_SERVING) but answering every request, so a load balancer's health checks take the replica out of rotation first. 0: GOAWAY at once.")
    var drainSeconds = 5.0

    @Option(name: .customLong("shutdown-timeout"),
            help: "Seconds calls in flight may take to finish after the shutdown GOAWAY; what is left then is cancelled.")
    var shutdownTimeout = 30.0

    @Option(name: .customLong("max-connection-age"),
            help: "Seconds (each connection ±10%) after which a connection gets a graceful GOAWAY, so long-lived clients move to replicas added later (gRPC max_connection_age). Default: no age limit.")
    var maxConnectionAge: Double?

    @Option(name: .customLong("max-connection-age-grace"),
            help: "Seconds the calls of a connection past --max-connection-age may still run before they are cancelled and it is closed. Default: as long as they take.")
    var maxConnectionAgeGrace: Double?

    // Who may change state (load/unload models): the admin token, or loopback only.

    @Option(name: .customLong("admin-token-file"),
            help: "File holding the admin token (visible ASCII, trailing newline ignored, at most 4 KiB). RepositoryModelLoad/Unload then need the header 'authorization: Bearer <token>': none gets UNAUTHENTICATED, a wrong one PERMISSION_DENIED.")
    var adminTokenFile: String?

    @Flag(name: .customLong("insecure-control-plane"),
          help: "Listen on a non-loopback --host without --admin-token-file: anyone who reaches the port may load and unload models. Only when something else guards the port.")
    var insecureControlPlane = false
    // TLS for the gRPC port (GRPCServerTLS). The metrics port stays plain HTTP.
    @Option(name: .customLong("tls-cert"),
            help: "PEM certificate chain (server certificate first): serve gRPC over TLS (1.2+, ALPN h2) with it and --tls-key. Read once at start. The metrics port stays plain HTTP.")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key (unencrypted) of --tls-cert.")
    var tlsKey: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65535).contains(grpcPort), (0...65535).contains(metricsPort) else { throw ValidationError("ports must be in 0...65535") }
        guard maxReceiveMessageSize > 0 else { throw ValidationError("--max-receive-message-size must be positive") }
        guard maxHeaderListBytes >= 1024 && maxHeaderListBytes <= 64 << 20 else {
            throw ValidationError("--max-header-list-bytes must be in 1024...67108864 (gRPC's own headers need a few hundred bytes)")
        }
        if let p = pollInterval, p <= 0 { throw ValidationError("--poll-interval must be positive") }
        guard cacheBytes >= 0 else { throw ValidationError("--cache-bytes must not be negative") }
        guard cacheShare > 0 && cacheShare <= 1 else { throw ValidationError("--cache-share must be in (0, 1]") }
        if let m = maxConnections, m < 1 { throw ValidationError("--max-connections must be at least 1") }
        guard maxModelBytes > 0 else { throw ValidationError("--max-model-bytes must be positive") }
        guard modelLoadTimeout > 0 && modelLoadTimeout <= 86_400 else { throw ValidationError("--model-load-timeout must be in (0, 86400] seconds") }
        for (flag, value) in [("--max-connection-outbound-bytes", maxConnectionOutboundBytes),
                              ("--max-connection-request-bytes", maxConnectionRequestBytes),
                              ("--max-server-request-bytes", maxServerRequestBytes)] where value <= 0 {
            throw ValidationError("\(flag) must be positive")
        }
        for (flag, value) in [("--handshake-timeout", handshakeTimeout), ("--idle-timeout", idleTimeout),
                              ("--request-body-timeout", requestBodyTimeout), ("--response-window-timeout", responseWindowTimeout),
                              ("--max-request-body-duration", maxRequestBodyDuration),
                              ("--keepalive-interval", keepaliveInterval),
                              ("--keepalive-timeout", keepaliveTimeout)] where !(value > 0 && value <= 1e9) {
            throw ValidationError("\(flag) must be a positive number of seconds (at most 1e9)")
        }
        guard drainSeconds >= 0 && drainSeconds <= 3600 else { throw ValidationError("--drain-seconds must be in [0, 3600]") }
        guard shutdownTimeout > 0 && shutdownTimeout <= 86_400 else { throw ValidationError("--shutdown-timeout must be in (0, 86400] seconds") }
        if let age = maxConnectionAge, !(age >= 0.1 && age <= 1e9) {
            throw ValidationError("--max-connection-age must be at least 0.1 seconds (at most 1e9)")
        }
        if let grace = maxConnectionAgeGrace {
            guard grace >= 0 && grace <= 1e9 else { throw ValidationError("--max-connection-age-grace must be in [0, 1e9] seconds") }
            guard maxConnectionAge != nil else { throw ValidationError("--max-connection-age-grace needs --max-connection-age") }
        }
        _ = try Self.tls(cert: tlsCert, key: tlsKey)
        if let follow, RegistryFollowOptions.parseAddress(follow) == nil {
            throw ValidationError("--follow must be HOST:PORT (IPv6 as [::1]:PORT), not '\(follow)'")
        }
        if follow == nil, followTokenFile != nil || followTLS || followCACert != nil {
            throw ValidationError("--follow-token-file, --follow-tls and --follow-ca-cert need --follow")
        }
        if followCACert != nil && !followTLS { throw ValidationError("--follow-ca-cert needs --follow-tls") }
        var transport = GRPCServerConfiguration()
        transport.maxReceiveMessageSize = maxReceiveMessageSize
        transport.maxConnectionRequestBytes = maxConnectionRequestBytes
        transport.maxServerRequestBytes = maxServerRequestBytes
        if let problem = transport.inconsistency { throw ValidationError(problem) }
    }

    /// The TLS setting of `--tls-cert`/`--tls-key`: both or neither.
    static func tls(cert: String?, key: String?) throws -> GRPCServerTLS? {
        switch (cert, key) {
        case (nil, nil): return nil
        case let (cert?, key?):
            guard !cert.isEmpty, !key.isEmpty else { throw ValidationError("--tls-cert and --tls-key must name files") }
            return GRPCServerTLS(certificateChainPath: cert, privateKeyPath: key)
        case (_?, nil): throw ValidationError("--tls-cert needs --tls-key (the certificate's private key)")
        case (nil, _?): throw ValidationError("--tls-key needs --tls-cert (the certificate chain it goes with)")
        }
    }

    func run() async throws {
        logging.bootstrap()
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["swerve_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        MetricsSystem.bootstrap(factory)

        var options = ServerOptions(repository: repository)
        options.host = host
        options.grpcPort = grpcPort
        options.metricsPort = metricsPort
        options.transport.maxReceiveMessageSize = maxReceiveMessageSize
        options.transport.maxConcurrentStreams = maxConcurrentStreams
        options.transport.maxHeaderListBytes = maxHeaderListBytes
        if let eventLoops { options.transport.eventLoopThreads = eventLoops }
        options.pollInterval = pollInterval
        options.cacheBytes = cacheBytes
        options.cacheShare = cacheShare
        options.transport.maxConnections = maxConnections
        options.maxModelBytes = maxModelBytes
        options.modelLoadTimeout = .milliseconds(Int64(modelLoadTimeout * 1000))
        options.strictReadiness = strictReadiness
        options.predictionLogDirectory = predictionLogDir
        if let feedbackTrainer {
            let (host, port) = try parseEndpoint(feedbackTrainer)
            options.feedbackTrainer = (host, port)
        }
        guard (1...64).contains(feedbackConcurrency) else { throw ValidationError("--feedback-concurrency must be within 1...64") }
        options.feedbackConcurrency = feedbackConcurrency
        options.controlPlane = ControlPlaneOptions(adminTokenFile: adminTokenFile, insecure: insecureControlPlane)
        options.transport.maxConnectionOutboundBytes = maxConnectionOutboundBytes
        options.transport.maxConnectionRequestBytes = maxConnectionRequestBytes
        options.transport.maxServerRequestBytes = maxServerRequestBytes
        options.transport.handshakeTimeout = .seconds(handshakeTimeout)
        options.transport.idleTimeout = .seconds(idleTimeout)
        options.transport.requestBodyTimeout = .seconds(requestBodyTimeout)
        options.transport.maxRequestBodyDuration = .seconds(maxRequestBodyDuration)
        options.transport.responseWindowTimeout = .seconds(responseWindowTimeout)
        options.transport.keepaliveInterval = .seconds(keepaliveInterval)
        options.transport.keepaliveTimeout = .seconds(keepaliveTimeout)
        options.drainDelay = .milliseconds(Int64(drainSeconds * 1000))
        options.shutdownTimeout = .milliseconds(Int64(shutdownTimeout * 1000))
        options.transport.maxConnectionAge = maxConnectionAge.map { .milliseconds(Int64($0 * 1000)) }
        options.transport.maxConnectionAgeGrace = maxConnectionAgeGrace.map { .milliseconds(Int64($0 * 1000)) }
        options.transport.tls = try Self.tls(cert: tlsCert, key: tlsKey)
        if let follow, let (host, port) = RegistryFollowOptions.parseAddress(follow) {
            var f = RegistryFollowOptions(host: host, port: port)
            if let followTokenFile {
                do {
                    f.token = try AdminAuthorization.readTokenFile(followTokenFile).token
                } catch {
                    throw ValidationError("--follow-token-file: \(error)")
                }
            }
            if followTLS { f.tls = GRPCClientTLS(trustRootsPath: followCACert) }
            f.limits.maxFileBytes = maxModelBytes
            options.follow = f
        }
        try await SwerveServerRunner.run(options: options, registry: registry, logger: Logger(label: "swerve"))
    }
}
