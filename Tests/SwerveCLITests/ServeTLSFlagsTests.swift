import SwerveTransport
import Testing

@testable import swerve

/// `swerve serve --tls-cert/--tls-key`: both or neither, checked before anything starts (the
/// files themselves are checked when the server starts: GRPCServerTLSTests, test_tls.py).
@Suite struct ServeTLSFlagsTests {
    @Test func bothFlagsMakeTheTLSSetting() throws {
        let command = try ServeCommand.parse(["--repository", "/tmp", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"])
        #expect(try ServeCommand.tls(cert: command.tlsCert, key: command.tlsKey)
            == GRPCServerTLS(certificateChainPath: "/c.pem", privateKeyPath: "/k.pem"))
    }

    @Test func neitherFlagMeansCleartext() throws {
        let command = try ServeCommand.parse(["--repository", "/tmp"])
        #expect(try ServeCommand.tls(cert: command.tlsCert, key: command.tlsKey) == nil)
    }

    @Test func oneWithoutTheOtherIsAnErrorNamingTheMissingFlag() {
        for (arguments, missing) in [(["--tls-cert", "/c.pem"], "--tls-key"), (["--tls-key", "/k.pem"], "--tls-cert"),
                                     (["--tls-cert", "", "--tls-key", "/k.pem"], "must name files")] {
            do {
                _ = try ServeCommand.parse(["--repository", "/tmp"] + arguments)
                Issue.record("accepted \(arguments)")
            } catch {
                let text = ServeCommand.message(for: error)
                #expect(text.contains(missing), "\(text)")
            }
        }
    }
}
