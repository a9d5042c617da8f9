import Foundation
import Logging
import SwerveClient
import SwerveProto
@testable import SwerveRPC
import SwerveRepository
import SwerveStatus
import SwerveTesting
import Testing
@testable import SwerveServer

/// The admin token: its parsing and comparison alone, the start-up rules (token file, loopback),
/// and the inference service's control calls through the real transport with and without it.
@Suite("Admin token and control plane")
struct AdminAuthTests {
    static let token = "s3cr3t-admin-token-0123456789abcdef"
    static let breastCancer = TestModel.example("breast_cancer_logreg")
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    // MARK: - The comparison

    @Test func constantTimeEqualsAgreesWithEquality() {
        let cases: [([UInt8], [UInt8])] = [
            ([], []), ([], [0]), ([0], []), ([1, 2, 3], [1, 2, 3]), ([1, 2, 3], [1, 2, 4]), ([1, 2, 3], [0, 2, 3]),
            ([1, 2, 3], [1, 2]), ([1, 2], [1, 2, 3]), ([1, 2, 3], [1, 2, 3, 0]), ([0], [0, 0]), (Array("a".utf8), Array("A".utf8)),
        ]
        for (a, b) in cases {
            #expect(AdminAuthorization.constantTimeEquals(a, b) == (a == b), "\(a) vs \(b)")
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let a = (0..<Int.random(in: 0...6, using: &rng)).map { _ in UInt8.random(in: 0...2, using: &rng) }
            let b = (0..<Int.random(in: 0...6, using: &rng)).map { _ in UInt8.random(in: 0...2, using: &rng) }
            #expect(AdminAuthorization.constantTimeEquals(a, b) == (a == b), "\(a) vs \(b)")
        }
        // A length that differs only in bits the low byte would drop (256 vs 0) is still unequal.
        #expect(!AdminAuthorization.constantTimeEquals([UInt8](repeating: 0, count: 256), []))
    }

    // MARK: - The header

    @Test func bearerHeaderParsing() throws {
        let auth = try AdminAuthorization(token: Self.token)
        let t = Self.token
        for accepted in ["Bearer \(t)", "bearer \(t)", "BEARER \(t)", "Bearer    \(t)", "  Bearer \(t)  ", "Bearer \(t)\t"] {
            #expect(auth.refusal(authorization: accepted) == nil, "\(accepted)")
        }
        for malformed in ["", "Bearer", "Bearer ", "Bearer    ", "Bearer\(t)", "Bearer\t\(t)", "Basic \(t)", "Token \(t)", t, "Bearerx \(t)"] {
            #expect(auth.refusal(authorization: malformed) == .malformed, "\(malformed)")
        }
        for wrong in ["Bearer x", "Bearer \(t.dropLast())", "Bearer \(t)0", "Bearer \(t.uppercased())", "Bearer \(t) \(t)", "Bearer 0\(t.dropFirst())"] {
            #expect(auth.refusal(authorization: wrong) == .wrong, "\(wrong)")
        }
    }

    @Test func headerListRules() throws {
        let auth = try AdminAuthorization(token: Self.token)
        #expect(auth.refusal(metadata: []) == .missing)
        #expect(auth.refusal(metadata: [("x-authorization", "Bearer \(Self.token)")]) == .missing)
        #expect(auth.refusal(metadata: [("te", "trailers"), ("authorization", "Bearer \(Self.token)")]) == nil)
        // Two headers, even both right: which one a proxy would look at is unclear, so neither counts.
        #expect(auth.refusal(metadata: [("authorization", "Bearer \(Self.token)"), ("authorization", "Bearer \(Self.token)")]) == .malformed)
        #expect(auth.refusal(metadata: [("authorization", "Bearer nope"), ("authorization", "Bearer \(Self.token)")]) == .malformed)
        #expect(AdminAuthorization.Refusal.missing.status.code == .unauthenticated)
        #expect(AdminAuthorization.Refusal.malformed.status.code == .unauthenticated)
        #expect(AdminAuthorization.Refusal.wrong.status.code == .permissionDenied)
        for r in AdminAuthorization.Refusal.allCases { #expect(!r.status.message.contains(Self.token)) }
    }

    @Test func tokensThatCannotBeSentAreRefused() {
        for bad in ["", " ", "\n", "two words", "tab\there", "caf\u{E9}", "nul\0x"] {
            #expect(throws: ControlPlaneError.self, "\(bad.debugDescription)") { try AdminAuthorization(token: bad) }
        }
    }

    // MARK: - The token file

    @Test func tokenFileIsReadStrippedAndChecked() throws {
        let dir = try TemporaryDirectory(prefix: "swerve-token")
        func write(_ name: String, _ bytes: [UInt8], mode: Int = 0o600) throws -> String {
            let path = dir.url.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            chmod(path, mode_t(mode))
            return path
        }
        let lf = try write("lf", Array("\(Self.token)\n".utf8))
        let crlf = try write("crlf", Array("\(Self.token)\r\n".utf8))
        let bare = try write("bare", Array(Self.token.utf8))
        for path in [lf, crlf, bare] {
            let (token, warnings) = try AdminAuthorization.readTokenFile(path)
            #expect(token == Self.token)
            #expect(warnings.isEmpty, "\(warnings)")
        }

        let open = try write("open", Array("\(Self.token)\n".utf8), mode: 0o644)
        let (_, openWarnings) = try AdminAuthorization.readTokenFile(open)
        #expect(openWarnings.contains { $0.contains("readable by every user") && $0.contains("chmod 600") })
        let short = try write("short", Array("abc\n".utf8))
        let (shortToken, shortWarnings) = try AdminAuthorization.readTokenFile(short)
        #expect(shortToken == "abc" && shortWarnings.contains { $0.contains("only 3 bytes") })

        func refusal(_ path: String) -> String {
            do {
                _ = try AdminAuthorization.readTokenFile(path)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(refusal(try write("empty", [])).contains("is empty"))
        #expect(refusal(try write("blank", Array(" \n\n".utf8))).contains("is empty"))
        #expect(refusal(try write("spaced", Array("\(Self.token) \n".utf8))).contains("whitespace"))
        #expect(refusal(try write("inner", Array("abc def\n".utf8))).contains("whitespace"))
        let big = refusal(try write("big", [UInt8](repeating: 0x61, count: AdminAuthorization.maxTokenFileBytes + 1)))
        #expect(big.contains("above the limit of 4096 bytes"), "\(big)")
        #expect(refusal(dir.url.appendingPathComponent("absent").path).contains("does not exist"))
        #expect(refusal(dir.url.path).contains("not a regular file"))
        // A FIFO is refused at once, not waited on for a writer.
        let fifo = dir.url.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(refusal(fifo).contains("FIFO"))
    }

    /// Exactly the methods that change state need the token (an exhaustive switch decides; a
    /// method added later that is not listed here fails this test until someone decides).
    @Test func exactlyTheStateChangingMethodsNeedTheToken() {
        let guarded = Set(InferenceService.Method.allCases.filter(\.changesState).map(\.rawValue))
        // AppendLabels writes training data (the trainer's log) and online metrics.
        #expect(guarded == ["/inference.GRPCInferenceService/RepositoryModelLoad", "/inference.GRPCInferenceService/RepositoryModelUnload",
                            "/swerve.v1.Feedback/AppendLabels"])
        #expect(InferenceService.Method.allCases.count == 17, "a method was added: decide whether it changes state, then update this test")
    }

    @Test func aTokenLengthDoesNotChangeHowMuchIsCompared() {
        // Equal only for equal bytes, whatever the lengths; and every comparison covers at
        // least the longest token a file may hold.
        let token = Array("0123456789abcdef0123".utf8)
        #expect(AdminAuthorization.constantTimeEquals(token, token))
        #expect(!AdminAuthorization.constantTimeEquals(token, token.dropLast()))
        #expect(!AdminAuthorization.constantTimeEquals(token + [0], token))
        #expect(!AdminAuthorization.constantTimeEquals([UInt8](), token))
        #expect(AdminAuthorization.constantTimeEquals([UInt8](), [UInt8]()))
        #expect(AdminAuthorization.paddedLength >= AdminAuthorization.maxTokenFileBytes)
    }

    // MARK: - Start-up rules

    @Test func loopbackAddresses() {
        for host in ["127.0.0.1", "127.1.2.3", "127.255.255.254", "localhost", "LOCALHOST", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"] {
            #expect(ControlPlaneOptions.isLoopback(host), "\(host)")
        }
        for host in ["0.0.0.0", "::", "[::]", "10.0.0.1", "128.0.0.1", "126.255.255.255", "192.168.1.1", "example.com", "",
                     "127.0.0.1.example.com", "localhost.example.com", "::2", "::ffff:10.0.0.1", "fe80::1",
                     // A trailing dot goes to DNS; short and octal forms, zone ids, v4-compatible forms.
                     "localhost.", "0", "127.1", "0177.0.0.1", "::ffff:0:127.0.0.1", "::127.0.0.1", "::1%lo"] {
            #expect(!ControlPlaneOptions.isLoopback(host), "\(host)")
        }
    }

    @Test func nonLoopbackNeedsATokenOrInsecure() throws {
        do {
            _ = try ControlPlaneOptions().makeGuard(host: "0.0.0.0", port: 8001, calls: "load and unload models", service: "inference", logger: Self.quiet)
            Issue.record("0.0.0.0 without a token was accepted")
        } catch {
            #expect(error.description.contains("refusing to listen on 0.0.0.0"))
            #expect(error.description.contains("port 8001 could load and unload models"))
            #expect(error.description.contains("--admin-token-file") && error.description.contains("--insecure-control-plane"))
        }
        #expect(try ControlPlaneOptions(insecure: true).makeGuard(host: "0.0.0.0", port: 1, calls: "", service: "", logger: Self.quiet).authorization == nil)
        #expect(try ControlPlaneOptions().makeGuard(host: "127.0.0.1", port: 1, calls: "", service: "", logger: Self.quiet).authorization == nil)

        let dir = try TemporaryDirectory(prefix: "swerve-token")
        let file = dir.url.appendingPathComponent("token").path
        try Data("\(Self.token)\n".utf8).write(to: URL(fileURLWithPath: file))
        chmod(file, 0o600)
        let guarded = try ControlPlaneOptions(adminTokenFile: file).makeGuard(host: "0.0.0.0", port: 1, calls: "", service: "", logger: Self.quiet)
        #expect(guarded.authorization?.refusal(authorization: "Bearer \(Self.token)") == nil)
        // A bad token file is fatal even on loopback: the operator asked for a token.
        try Data().write(to: URL(fileURLWithPath: file))
        #expect(throws: ControlPlaneError.self) {
            try ControlPlaneOptions(adminTokenFile: file).makeGuard(host: "127.0.0.1", port: 1, calls: "", service: "", logger: Self.quiet)
        }
    }

    // MARK: - Through the transport

    static func index(_ server: InProcessServer) async throws -> [String] {
        try await server.client.repositoryIndex().map { "\($0.name)/\($0.version)/\($0.state)" }.sorted()
    }

    static let unloadMethod = "/inference.GRPCInferenceService/RepositoryModelUnload"

    /// RepositoryModelUnload of `body` with `headers`, through the raw connection.
    static func rawUnload(_ server: InProcessServer, _ body: [UInt8], _ headers: [(String, String)]) async -> GRPCStatus? {
        do {
            _ = try await server.connection.unary(unloadMethod, body, timeout: .seconds(10), metadata: headers)
            return nil
        } catch let status as GRPCStatus {
            return status
        } catch {
            return GRPCStatus(.unknown, "\(error)")
        }
    }

    @Test func loadAndUnloadNeedTheToken() async throws {
        try await withInProcessServer([Self.breastCancer], adminToken: Self.token) { server in
            let before = try await Self.index(server)
            let anonymous = try await server.makeClient()
            let unloadRefused = await statusThrown { try await anonymous.unloadModel(name: "breast_cancer_logreg") }
            let loadRefused = await statusThrown { try await anonymous.loadModel(name: "breast_cancer_logreg") }
            await anonymous.close()
            #expect(unloadRefused?.code == .unauthenticated)
            #expect(loadRefused?.code == .unauthenticated)
            #expect(try await Self.index(server) == before)
            #expect(try await server.client.modelReady(name: "breast_cancer_logreg"))

            // Other schemes, wrong tokens, two headers: through the raw connection.
            let unload = RepositoryModelUnloadRequest(modelName: "breast_cancer_logreg").serializedBytes()
            let basic = await Self.rawUnload(server, unload, [("authorization", "Basic \(Self.token)")])
            #expect(basic?.code == .unauthenticated)
            let wrong = await Self.rawUnload(server, unload, [("authorization", "Bearer wrong")])
            #expect(wrong?.code == .permissionDenied)
            let longer = await Self.rawUnload(server, unload, [("authorization", "Bearer \(Self.token)x")])
            #expect(longer?.code == .permissionDenied)
            let twice = await Self.rawUnload(server, unload, [("authorization", "Bearer \(Self.token)"), ("authorization", "Bearer \(Self.token)")])
            #expect(twice?.code == .unauthenticated)
            for status in [basic, wrong, longer, twice] { #expect(status.map { !$0.message.contains(Self.token) } ?? false) }
            #expect(try await Self.index(server) == before)

            // Refused before the request is decoded: bytes that are no message still get UNAUTHENTICATED.
            let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]
            #expect(await Self.rawUnload(server, garbage, [])?.code == .unauthenticated)
            #expect(await Self.rawUnload(server, garbage, [("authorization", "Bearer \(Self.token)")])?.code == .invalidArgument)

            // The right token (the in-process client carries it) works.
            try await server.client.unloadModel(name: "breast_cancer_logreg")
            #expect(try await server.client.modelReady(name: "breast_cancer_logreg") == false)
            try await server.client.loadModel(name: "breast_cancer_logreg")
            #expect(try await server.client.modelReady(name: "breast_cancer_logreg"))
        }
    }

    @Test func everythingElseStaysOpen() async throws {
        try await withInProcessServer([Self.breastCancer], adminToken: Self.token) { server in
            let anonymous = try await server.makeClient()
            #expect(try await anonymous.serverLive())
            #expect(try await anonymous.serverReady())
            #expect(try await anonymous.modelReady(name: "breast_cancer_logreg"))
            #expect(try await anonymous.healthCheck() == .serving)
            #expect(try await anonymous.modelMetadata(name: "breast_cancer_logreg").name == "breast_cancer_logreg")
            #expect(try await anonymous.modelConfig(name: "breast_cancer_logreg").name == "breast_cancer_logreg")
            #expect(!(try await anonymous.repositoryIndex()).isEmpty)
            let out = try await anonymous.infer(model: "breast_cancer_logreg", inputs: ["input": ClientTensor(shape: [1, 30], fp32: Array(repeating: 0.5, count: 30))])
            #expect(out.outputs.count == 2)
            #expect(!(try await anonymous.modelStatistics()).isEmpty)
            await anonymous.close()
        }
    }

    /// Without a token (loopback), control calls are open as before.
    @Test func noTokenMeansOpen() async throws {
        try await withInProcessServer([Self.breastCancer]) { server in
            let anonymous = try await server.makeClient()
            let unloaded = await statusThrown { try await anonymous.unloadModel(name: "breast_cancer_logreg") }
            let loaded = await statusThrown { try await anonymous.loadModel(name: "breast_cancer_logreg") }
            await anonymous.close()
            #expect(unloaded == nil && loaded == nil)
            #expect(try await server.client.modelReady(name: "breast_cancer_logreg"))
        }
    }

    // MARK: - Model names

    /// Sent through SwerveClient. (Not "x\0y": the client's protobuf-c encoding ends a string at
    /// its first NUL, so the server never sees one from it; a NUL on the wire is refused when the
    /// request is decoded, see IntegrationTests/interop/test_auth.py.)
    static let hostileNames = ["..", ".", "../x", "../breast_cancer_logreg", "/etc", "a/b", "breast_cancer_logreg/", "a\\b",
                               ".trainer", ".hidden", "line\nbreak", "del\u{7F}", String(repeating: "m", count: 256)]

    @Test func hostileNamesAreInvalidEverywhere() async throws {
        try await withInProcessServer([Self.breastCancer], adminToken: Self.token) { server in
            let before = try await Self.index(server)
            let c = server.client
            for name in Self.hostileNames {
                let calls: [(String, () async throws -> Void)] = [
                    ("load", { try await c.loadModel(name: name) }),
                    ("unload", { try await c.unloadModel(name: name) }),
                    ("ready", { _ = try await c.modelReady(name: name) }),
                    ("metadata", { _ = try await c.modelMetadata(name: name) }),
                    ("config", { _ = try await c.modelConfig(name: name) }),
                    ("statistics", { _ = try await c.modelStatistics(name: name) }),
                    ("infer", { _ = try await c.infer(model: name, inputs: ["input": ClientTensor(shape: [1, 30], fp32: Array(repeating: 0, count: 30))]) }),
                ]
                for (what, call) in calls {
                    let status = await statusThrown(call)
                    #expect(status?.code == .invalidArgument, "\(what) \(name.debugDescription): \(String(describing: status))")
                    #expect((status?.message.utf8.count ?? 0) < 400, "\(what): message not bounded")
                }
            }
            // The client refuses to send a NUL (its encoding would cut the name there and unload
            // breast_cancer_logreg).
            #expect(await statusThrown { try await c.unloadModel(name: "breast_cancer_logreg\0x") }?.code == .invalidArgument)
            #expect(await statusThrown { try await c.loadModel(name: "breast_cancer_logreg\0x") }?.code == .invalidArgument)
            #expect(try await Self.index(server) == before)
            #expect(try await c.modelReady(name: "breast_cancer_logreg"))
            // Plain names that merely look odd are names: not found, not invalid.
            for name in ["%2e%2e", "a..b", "x.", "-", "名前"] {
                #expect(await statusThrown { _ = try await c.modelMetadata(name: name) }?.code == .notFound, "\(name)")
            }
            #expect(try await c.modelStatistics(name: "").count >= 1)
        }
    }

    @Test func modelNameRules() {
        for bad in Self.hostileNames + ["", "a/..", "nul\0x", "\0"] {
            #expect(ModelRepository.modelNameProblem(bad) != nil, "\(bad.debugDescription)")
            #expect(throws: StorageError.self) { try ModelRepository.validateModelName(bad) }
        }
        for good in ["dense", "%2e%2e", "a..b", "x.", "名前", "m-1_2.onnx", String(repeating: "m", count: 255)] {
            #expect(ModelRepository.modelNameProblem(good) == nil, "\(good)")
        }
        #expect(ModelRepository.quotedName("a\nb") == "'a\\u{a}b'")
        #expect(ModelRepository.quotedName(String(repeating: "m", count: 1000)).utf8.count < 100)
    }
}
