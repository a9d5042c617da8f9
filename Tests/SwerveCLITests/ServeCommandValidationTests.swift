import Testing

@testable import swerve

/// `swerve serve`'s own checks of its flags, before anything starts.
@Suite struct ServeCommandValidationTests {
    @Test func aMessageSizeTheRequestBudgetsCannotHoldIsAnErrorNamingBothFlags() {
        for (budgetFlag, budget) in [("--max-connection-request-bytes", "8388608"), ("--max-server-request-bytes", "8388608")] {
            do {
                _ = try ServeCommand.parse(["--repository", "/tmp", "--max-receive-message-size", "8388608", budgetFlag, budget])
                Issue.record("accepted a message size of 8 MiB with \(budgetFlag) 8 MiB")
            } catch {
                let text = ServeCommand.message(for: error)
                #expect(text.contains("--max-receive-message-size") && text.contains(budgetFlag), "\(text)")
            }
        }
    }

    @Test func consistentLimitsAndTheNewFlagsParse() throws {
        let command = try ServeCommand.parse([
            "--repository", "/tmp", "--max-receive-message-size", "8388608", "--max-connection-request-bytes", "16777216",
            "--max-header-list-bytes", "32768", "--response-window-timeout", "10", "--max-request-body-duration", "60",
        ])
        #expect(command.maxHeaderListBytes == 32768)
        #expect(command.responseWindowTimeout == 10 && command.maxRequestBodyDuration == 60)
        #expect(throws: (any Error).self) { try ServeCommand.parse(["--repository", "/tmp", "--max-header-list-bytes", "100"]) }
    }
}
