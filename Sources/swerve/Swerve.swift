import ArgumentParser

/// The `swerve` command: serve models, query a server, and measure it.
@main
struct Swerve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swerve",
        abstract: "Swerve: a low-latency model server speaking the Open Inference Protocol (KServe v2) over gRPC.",
        subcommands: [ServeCommand.self, ModelsCommand.self, PredictCommand.self, BenchCommand.self,
                      TrainCommand.self, PublishCommand.self, WalStressCommand.self, TrainerCommand.self,
                      RegistryCommand.self, LabelCommand.self, RolloutCommand.self, MonitorCommand.self]
    )
}
