import ArgumentParser
import SwerveClient
import SwerveProto
import SwerveRPC
import SwerveRepository
import SwerveTransport
import SwerveStatus

#if canImport(Glibc)
import Glibc
#endif

/// `swerve models [list]`: what a server holds, and the tensors of each ready model;
/// `swerve models load|unload NAME`: RepositoryModelLoad/Unload, with the admin token.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List a server's models, or load or unload one.",
        subcommands: [ListModels.self, LoadModel.self, UnloadModel.self],
        defaultSubcommand: ListModels.self)
}

/// `swerve models load NAME`: RepositoryModelLoad.
struct LoadModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Load (or reload) a model from the server's repository (RepositoryModelLoad).")

    @Argument(help: "The model's name (its folder in the repository).")
    var name: String

    @OptionGroup var connection: ClientConnectionOptions
    @OptionGroup var token: AdminTokenOption

    func validate() throws { try validateModelNameArgument(name) }

    func run() async throws {
        try await connection.withClient(adminToken: try token.read()) { client in
            try await client.loadModel(name: name)
            print("loaded \(name)")
        }
    }
}

/// `swerve models unload NAME`: RepositoryModelUnload.
struct UnloadModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unload", abstract: "Unload every version of a model (RepositoryModelUnload).")

    @Argument(help: "The model's name.")
    var name: String

    @OptionGroup var connection: ClientConnectionOptions
    @OptionGroup var token: AdminTokenOption

    func validate() throws { try validateModelNameArgument(name) }

    func run() async throws {
        try await connection.withClient(adminToken: try token.read()) { client in
            try await client.unloadModel(name: name)
            print("unloaded \(name)")
        }
    }
}

/// `--token-file F`: the admin token the control commands send (`authorization: Bearer <token>`).
struct AdminTokenOption: ParsableArguments {
    @Option(name: .customLong("token-file"),
            help: "File holding the server's admin token (the one given to its --admin-token-file); needed when the server has one.")
    var tokenFile: String?

    /// The token, read and checked as the server reads its own; nil without `--token-file`.
    func read() throws -> String? {
        guard let tokenFile else { return nil }
        do {
            return try AdminAuthorization.readTokenFile(tokenFile).token
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// A CLI error, not a call, for a name the server would refuse anyway.
func validateModelNameArgument(_ name: String) throws {
    do {
        try ModelRepository.validateModelName(name)
    } catch {
        throw ValidationError(error.message)
    }
}

/// `swerve models list` (also plain `swerve models`).
struct ListModels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List a server's models (RepositoryIndex) and the inputs and outputs of the ready ones.")

    @OptionGroup var connection: ClientConnectionOptions

    func run() async throws {
        try await connection.withClient { client in
            let index = try await client.repositoryIndex()
            if index.isEmpty {
                print("no models")
                return
            }
            printTable(
                header: ["MODEL", "VERSION", "STATE", "REASON"],
                rows: index.map { [$0.name, $0.version.isEmpty ? "-" : $0.version, $0.state, $0.reason] })
            var described = Set<String>()
            for entry in index where entry.state == "READY" && described.insert(entry.name).inserted {
                let metadata = try await client.modelMetadata(name: entry.name)
                print("")
                let platform = metadata.platform.isEmpty ? "" : ", platform \(metadata.platform)"
                print("\(metadata.name) (versions \(metadata.versions.joined(separator: ", "))\(platform))")
                printTable(
                    header: nil,
                    rows: metadata.inputs.map { ["  input", $0.name, $0.datatype, shapeText($0.shape)] }
                        + metadata.outputs.map { ["  output", $0.name, $0.datatype, shapeText($0.shape)] })
            }
        }
    }
}

// MARK: - Shared by the client commands (models, predict, bench)

/// What `--tls` and `--ca-cert` ask for: nil (cleartext) unless one is given; the handshake may
/// take up to the call timeout, at most 10 s.
func clientTLSSettings(tls: Bool, caCert: String?, timeoutSeconds: Double) -> GRPCClientTLS? {
    guard tls || caCert != nil else { return nil }
    var settings = GRPCClientTLS(trustRootsPath: caCert)
    settings.handshakeTimeout = .milliseconds(Int64(min(timeoutSeconds, 10) * 1000))
    return settings
}

/// `--server host:port` and `--timeout`, shared by the commands that talk to a server.
struct ClientConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "The server's gRPC address, host:port.")
    var server: String = "127.0.0.1:8001"

    @Option(name: .long, help: "Deadline of each call, in seconds.")
    var timeout: Double = 30

    // TLS (GRPCClientTLS).
    @Flag(name: .long, help: "Connect over TLS (ALPN h2), trusting the system's CA roots or --ca-cert.")
    var tls = false

    @Option(name: .customLong("ca-cert"), help: "PEM CA certificate(s) to trust for the server's certificate; implies --tls.")
    var caCert: String?

    /// The TLS settings of `--tls`/`--ca-cert`; nil: cleartext. The handshake may take up to
    /// --timeout (at most 10 s).
    var clientTLS: GRPCClientTLS? { clientTLSSettings(tls: tls, caCert: caCert, timeoutSeconds: timeout) }

    /// The host and port of `--server`; `[v6]:port` is accepted.
    func endpoint() throws -> (host: String, port: Int) {
        try parseEndpoint(server)
    }

    /// Connects, runs `body`, closes; a non-OK gRPC status ends the process with the status
    /// code as the exit code, after printing it.
    func withClient(
        connections: Int = 1, adminToken: String? = nil, routeKey: Bool = false, _ body: (SwerveClient) async throws -> Void
    ) async throws {
        let (host, port) = try endpoint()
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        do {
            let client = try await SwerveClient.connect(
                host: host, port: port, connections: connections, defaultTimeout: .milliseconds(Int64(timeout * 1000)),
                adminToken: adminToken,
                tls: clientTLS, routeKey: routeKey)
            do {
                try await body(client)
            } catch {
                await client.close()
                throw error
            }
            await client.close()
        } catch let status as GRPCStatus {
            printError("swerve: \(status.code.canonicalName): \(status.message)")
            throw ExitCode(Int32(status.code.rawValue))
        }
    }
}

func parseEndpoint(_ text: String) throws -> (host: String, port: Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
        throw ValidationError("--server must be host:port, not '\(text)'")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    if host.isEmpty { host = "127.0.0.1" }
    return (host, port)
}

func printError(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(0x0A)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

func shapeText(_ shape: [Int64]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

/// Prints rows in left-aligned columns.
func printTable(header: [String]?, rows: [[String]]) {
    let all = (header.map { [$0] } ?? []) + rows
    guard let columns = all.map(\.count).max() else { return }
    var widths = [Int](repeating: 0, count: columns)
    for row in all {
        for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
    }
    for row in all {
        var line = ""
        for (i, cell) in row.enumerated() {
            line += i == row.count - 1 ? cell : cell.padded(to: widths[i] + 2)
        }
        while line.hasSuffix(" ") { line.removeLast() }
        print(line)
    }
}

extension String {
    fileprivate func padded(to length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
