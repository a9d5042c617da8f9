import ArgumentParser
import Logging
import SwerveRPC
import SwerveRegistry

/// `swerve registry`: the registry replicas follow (gRPC swerve.v1.Registry) over a repository
/// folder, for models published without the training service.
struct RegistryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "Serve a model repository as the registry replicas follow (gRPC swerve.v1.Registry).",
        discussion: """
            Replicas started with `swerve serve --follow HOST:PORT --repository LOCAL_DIR` watch it \
            and fetch each version's files (chunked, with SHA-256) into their own folders. Publish \
            into --repository with `swerve publish`; move labels with SetLabels. `swerve trainer` \
            serves the same service over its own repository.
            """)

    @Option(help: "Model repository to serve.")
    var repository: String

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "gRPC port.")
    var port = 8004

    @Option(name: .customLong("admin-token-file"),
            help: "File holding the admin token (visible ASCII, trailing newline ignored, at most 4 KiB). Every registry call then needs the header 'authorization: Bearer <token>': none gets UNAUTHENTICATED, a wrong one PERMISSION_DENIED.")
    var adminTokenFile: String?

    @Flag(name: .customLong("insecure-control-plane"),
          help: "Listen on a non-loopback --host without --admin-token-file: anyone who reaches the port may download every model and move labels. Only when something else guards the port.")
    var insecureControlPlane = false

    @Option(name: .customLong("tls-cert"),
            help: "PEM certificate chain (server certificate first): serve gRPC over TLS (1.2+, ALPN h2) with it and --tls-key. Read once at start.")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key (unencrypted) of --tls-cert.")
    var tlsKey: String?

    @Option(name: .customLong("max-model-bytes"),
            help: "Largest file of a version the registry lists or sends, in bytes; a version holding a larger one is not listed (logged).")
    var maxModelBytes = 2 << 30

    @Option(name: .customLong("max-watchers"), help: "Watch streams open at once; one more gets RESOURCE_EXHAUSTED.")
    var maxWatchers = 64

    @Option(name: .customLong("response-window-timeout"),
            help: "Seconds a Watch or FetchVersion stream may wait for its client to read (grant flow-control window) before it is reset.")
    var responseWindowTimeout = 30.0

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxModelBytes > 0 else { throw ValidationError("--max-model-bytes must be positive") }
        guard maxWatchers > 0 else { throw ValidationError("--max-watchers must be positive") }
        guard responseWindowTimeout > 0 && responseWindowTimeout <= 1e9 else {
            throw ValidationError("--response-window-timeout must be a positive number of seconds (at most 1e9)")
        }
        _ = try ServeCommand.tls(cert: tlsCert, key: tlsKey)
    }

    func run() async throws {
        logging.bootstrap()
        var options = RegistryOptions(repository: repository)
        options.host = host
        options.grpcPort = port
        options.controlPlane = ControlPlaneOptions(adminTokenFile: adminTokenFile, insecure: insecureControlPlane)
        options.tls = try ServeCommand.tls(cert: tlsCert, key: tlsKey)
        options.limits.maxFileBytes = maxModelBytes
        options.limits.maxWatchers = maxWatchers
        options.responseWindowTimeout = .milliseconds(Int64(responseWindowTimeout * 1000))
        try await RegistryRunner.run(options: options, logger: Logger(label: "swerve-registry"))
    }
}
