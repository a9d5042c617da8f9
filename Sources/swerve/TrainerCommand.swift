import ArgumentParser
import Logging
import SwerveRPC
import SwerveTrainingServer

/// `swerve trainer`: the training service (gRPC swerve.v1.Trainer).
struct TrainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trainer",
        abstract: "Run the training service: training jobs, example ingest (write-ahead log) and the model registry over gRPC.",
        discussion: """
            Static jobs train on a CSV file; continuous jobs train on examples pushed with \
            AppendExamples (and/or CSV files dropped in a watched directory), validating each batch \
            against the serving version, gating and publishing new versions into --repository, \
            where `swerve serve --poll-interval N` picks them up. State (example logs, checkpoints) \
            lives in --state-dir (default <repository>/.trainer). The same port serves the registry \
            (swerve.v1.Registry) over --repository, which `swerve serve --follow HOST:PORT` replicas follow.
            """)

    @Option(help: "Model repository to publish into.")
    var repository: String

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(name: .customLong("grpc-port"), help: "gRPC port.")
    var grpcPort = 8003

    @Option(name: .customLong("state-dir"), help: "Example logs and job checkpoints (default: <repository>/.trainer).")
    var stateDir: String?

    // Who may change state (jobs, examples, promotions): the admin token, or loopback only.

    @Option(name: .customLong("admin-token-file"),
            help: "File holding the admin token (visible ASCII, trailing newline ignored, at most 4 KiB). SubmitJob, CancelJob, AppendExamples, PromoteVersion, RollbackVersion and every swerve.v1.Registry call (Watch, FetchVersion, labels, version status) then need the header 'authorization: Bearer <token>': none gets UNAUTHENTICATED, a wrong one PERMISSION_DENIED.")
    var adminTokenFile: String?

    @Flag(name: .customLong("insecure-control-plane"),
          help: "Listen on a non-loopback --host without --admin-token-file: anyone who reaches the port may submit jobs, append examples and promote versions. Only when something else guards the port.")
    var insecureControlPlane = false
    // TLS for the gRPC port, as `swerve serve` has it.
    @Option(name: .customLong("tls-cert"),
            help: "PEM certificate chain (server certificate first): serve gRPC over TLS (1.2+, ALPN h2) with it and --tls-key. Read once at start.")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key (unencrypted) of --tls-cert.")
    var tlsKey: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65535).contains(grpcPort) else { throw ValidationError("--grpc-port must be in 0...65535") }
        _ = try ServeCommand.tls(cert: tlsCert, key: tlsKey)
    }

    func run() async throws {
        logging.bootstrap()
        var options = TrainerOptions(repository: repository)
        options.host = host
        options.grpcPort = grpcPort
        options.stateDirectory = stateDir
        options.controlPlane = ControlPlaneOptions(adminTokenFile: adminTokenFile, insecure: insecureControlPlane)
        options.tls = try ServeCommand.tls(cert: tlsCert, key: tlsKey)
        try await TrainerRunner.run(options: options, logger: Logger(label: "swerve-trainer"))
    }
}
