import Foundation
import Logging
import Testing

@testable import SwerveTransport
import SwerveStatus
import SwerveTesting

/// The TLS settings' checks: what `GRPCServerTLS.makeContext` accepts and how it refuses, and a
/// server that refuses to start on bad files. Certificates are made per test with `openssl`
/// (a throwaway CA and a server certificate for localhost/127.0.0.1); nothing private is
/// committed. Serving over TLS is tested against grpcio, h2load and Python's ssl in
/// IntegrationTests/interop/test_tls.py.
@Suite struct GRPCServerTLSTests {
    /// A CA, a server certificate it signed, the certificate's key, and an unrelated key.
    struct Files {
        let directory: TemporaryDirectory
        var cert: String { directory.appending("server.pem").path }
        var key: String { directory.appending("server.key").path }
        var otherKey: String { directory.appending("other.key").path }
        var encryptedKey: String { directory.appending("encrypted.key").path }
        func path(_ name: String) -> String { directory.appending(name).path }

        init() throws {
            directory = try TemporaryDirectory(prefix: "swerve-tls")
            let d = directory.path
            try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                              "-keyout", "\(d)/ca.key", "-out", "\(d)/ca.pem", "-days", "2", "-subj", "/CN=swerve test CA"])
            try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                              "-keyout", "\(d)/server.key", "-out", "\(d)/server.csr", "-subj", "/CN=localhost"])
            try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: "\(d)/ext.cnf", atomically: true, encoding: .utf8)
            try Self.openssl(["x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca.key",
                              "-CAcreateserial", "-out", "\(d)/server.pem", "-days", "2", "-extfile", "\(d)/ext.cnf"])
            try Self.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "\(d)/other.key"])
            try Self.openssl(["pkey", "-in", "\(d)/server.key", "-aes256", "-passout", "pass:secret", "-out", "\(d)/encrypted.key"])
        }

        static func openssl(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["openssl"] + arguments
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw TLSFixtureError(description: "openssl \(arguments.joined(separator: " ")): \(text)")
            }
        }
    }

    struct TLSFixtureError: Error, CustomStringConvertible { let description: String }

    /// The message `makeContext` refuses `tls` with (nil: it was accepted).
    static func refusal(_ tls: GRPCServerTLS) -> String? {
        do {
            _ = try tls.makeContext()
            return nil
        } catch {
            return error.description
        }
    }

    @Test func aMatchingCertificateAndKeyMakeAContext() throws {
        let files = try Files()
        let tls = GRPCServerTLS(certificateChainPath: files.cert, privateKeyPath: files.key)
        #expect(Self.refusal(tls) == nil)
        #expect(tls.validityWarning() == nil)
    }

    @Test func missingUnreadableAndWrongKindsOfFilesAreRefusedNamingTheFile() throws {
        let files = try Files()
        let empty = files.path("empty.pem")
        FileManager.default.createFile(atPath: empty, contents: Data())
        let large = files.path("large.pem")
        FileManager.default.createFile(atPath: large, contents: Data(repeating: 0x41, count: GRPCServerTLS.maxPEMFileBytes + 1))
        let garbage = files.path("garbage.pem")
        try "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let fifo = files.path("fifo.pem")
        #expect(mkfifo(fifo, 0o600) == 0)

        let cases: [(cert: String, key: String, expected: [String])] = [
            (files.path("missing.pem"), files.key, ["--tls-cert", files.path("missing.pem"), "No such file"]),
            (files.cert, files.path("missing.key"), ["--tls-key", files.path("missing.key"), "No such file"]),
            (files.directory.path, files.key, ["--tls-cert", "is not a regular file"]),
            (fifo, files.key, ["--tls-cert", fifo, "is not a regular file"]),
            (empty, files.key, ["--tls-cert", "\(empty) is empty"]),
            (large, files.key, ["--tls-cert", large, "larger than 1 MiB"]),
            (garbage, files.key, ["--tls-cert", garbage, "holds no valid PEM certificate"]),
            (files.key, files.key, ["--tls-cert", "holds no valid PEM certificate"]),
            (files.cert, files.cert, ["--tls-key", files.cert, "no valid unencrypted PEM private key"]),
            (files.cert, files.encryptedKey, ["--tls-key", files.encryptedKey, "no valid unencrypted PEM private key"]),
            (files.cert, files.otherKey, ["--tls-key", files.otherKey, "does not go with the certificate", files.cert]),
        ]
        for (cert, key, expected) in cases {
            let message = Self.refusal(GRPCServerTLS(certificateChainPath: cert, privateKeyPath: key))
            #expect(message != nil, "accepted cert \(cert), key \(key)")
            for part in expected {
                #expect(message?.contains(part) == true, "\(message ?? "accepted") should contain \(part)")
            }
        }
    }

    @Test func aCertificateOutsideItsValidityIsWarnedAbout() throws {
        let files = try Files()
        let tls = GRPCServerTLS(certificateChainPath: files.cert, privateKeyPath: files.key)
        let now = time(nil)
        #expect(tls.validityWarning(now: now) == nil)
        #expect(tls.validityWarning(now: now + 10 * 86_400)?.contains("expired") == true)
        #expect(tls.validityWarning(now: now - 10 * 86_400)?.contains("not valid yet") == true)
    }

    @Test func ourClientAndServerTalkOverTLSAndRefuseWhatTheyShould() async throws {
        let files = try Files()
        try await withTestServer(configure: {
            $0.tls = GRPCServerTLS(certificateChainPath: files.cert, privateKeyPath: files.key)
        }) { server, _ in
            var tls = GRPCClientTLS(trustRootsPath: files.path("ca.pem"))
            // By IP address (checked against the certificate's IP SAN) and by name (SNI + DNS SAN).
            for host in ["127.0.0.1", "localhost"] {
                let client = try await GRPCClientConnection.connect(host: host, port: server.port, tls: tls)
                let big = bigMessage(7)  // 3 MiB: many TLS records, flow control over TLS
                #expect(try await client.unary(TestMethod.echo, big) == big)
                var received = 0
                for try await _ in client.serverStreaming(TestMethod.stream, Array("50".utf8)) { received += 1 }
                #expect(received == 50)
                await client.close()
            }

            // The system's roots do not know the test CA.
            await #expect {
                _ = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port, tls: GRPCClientTLS())
            } throws: { error in
                (error as? GRPCStatus)?.code == .unavailable && "\(error)".contains("CERTIFICATE_VERIFY_FAILED")
            }
            // A cleartext client gets no HTTP/2 from a TLS port.
            let plain = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port)
            await #expect(throws: GRPCStatus.self) { _ = try await plain.unary(TestMethod.echo, [1], timeout: .seconds(5)) }
            await plain.close()
            // A CA file that is not one is refused before connecting, naming it.
            tls.trustRootsPath = files.key
            await #expect {
                _ = try await GRPCClientConnection.connect(host: "127.0.0.1", port: server.port, tls: tls)
            } throws: { error in
                (error as? GRPCStatus)?.code == .invalidArgument && "\(error)".contains(files.key)
            }
        }
        // A TLS client against a cleartext server fails its handshake, with a message that says so.
        try await withTestServer { server, _ in
            await #expect {
                _ = try await GRPCClientConnection.connect(
                    host: "127.0.0.1", port: server.port, tls: GRPCClientTLS(trustRootsPath: files.path("ca.pem")))
            } throws: { error in
                (error as? GRPCStatus)?.code == .unavailable && "\(error)".contains("TLS handshake")
            }
        }
    }

    struct NoCalls: GRPCCallHandler {
        func handle(_ call: GRPCServerCall) { call.finish(GRPCStatus(.unimplemented, "no calls here")) }
    }

    @Test func aServerWithBadTLSFilesRefusesToStartAndBindsNothing() async throws {
        let files = try Files()
        var configuration = GRPCServerConfiguration()
        configuration.port = 0
        configuration.eventLoopThreads = 1
        configuration.tls = GRPCServerTLS(certificateChainPath: files.cert, privateKeyPath: files.otherKey)
        let server = GRPCServer(configuration: configuration, handler: NoCalls(), logger: Logger(label: "test"))
        await #expect(throws: GRPCServerTLSError.self) { try await server.start() }
        #expect(server.port == 0, "nothing was bound")
        await server.shutdownGracefully(timeout: .seconds(1))

        configuration.tls = GRPCServerTLS(certificateChainPath: files.cert, privateKeyPath: files.key)
        let good = GRPCServer(configuration: configuration, handler: NoCalls(), logger: Logger(label: "test"))
        try await good.start()
        #expect(good.port != 0)
        await good.shutdownGracefully(timeout: .seconds(1))
    }
}
