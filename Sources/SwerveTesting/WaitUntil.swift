/// `waitUntil` gave up: what was awaited did not become true in time.
public struct WaitTimeout: Error, CustomStringConvertible {
    /// What the caller was waiting for, in its own words.
    public var awaited: String
    /// How long it waited.
    public var timeout: Duration
    /// Where `waitUntil` was called (`file:line`).
    public var location: String

    public var description: String { "timed out after \(timeout) waiting until \(awaited) (\(location))" }
}

/// Polls `condition` every `poll` until it is true, for at most `timeout`; then throws
/// ``WaitTimeout`` naming `awaited` and the call site. swift-testing reports the thrown error as the
/// test's failure, so a test reads `try await waitUntil("the model is ready") { … }`.
///
/// For synchronizing with something that happens on another thread or process: a fixed sleep
/// either wastes time or, on a slow machine, is too short; this waits exactly as long as needed
/// and fails clearly when the thing never happens. Errors `condition` throws are passed on at once.
public func waitUntil(
    _ awaited: String, timeout: Duration = .seconds(10), poll: Duration = .milliseconds(10),
    fileID: String = #fileID, line: Int = #line,
    _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if try await condition() { return }
        guard clock.now < deadline else {
            throw WaitTimeout(awaited: awaited, timeout: timeout, location: "\(fileID):\(line)")
        }
        try await Task.sleep(for: poll)
    }
}

/// Runs `body` for at most `timeout`: its result, or ``WaitTimeout`` naming `awaited` when the
/// time runs out first (then `body`'s task is cancelled, and this returns once it has stopped, so
/// `body` must honour cancellation, as async sequences and `Task.sleep` do).
///
/// For waiting on a stream: `try await withTimeout(.seconds(10), "the watch reports NOT_SERVING")
/// { for try await status in watch { … } }`.
public func withTimeout<R: Sendable>(
    _ timeout: Duration, _ awaited: String, fileID: String = #fileID, line: Int = #line,
    _ body: @escaping @Sendable () async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: TimedOutcome<R>.self) { group in
        group.addTask { .finished(try await body()) }
        group.addTask {
            try await Task.sleep(for: timeout)
            return .timedOut
        }
        defer { group.cancelAll() }
        switch try await group.next() {
        case .finished(let value): return value
        case .timedOut, nil: throw WaitTimeout(awaited: awaited, timeout: timeout, location: "\(fileID):\(line)")
        }
    }
}

/// Which of `withTimeout`'s two tasks ended first.
private enum TimedOutcome<R: Sendable>: Sendable {
    case finished(R)
    case timedOut
}
