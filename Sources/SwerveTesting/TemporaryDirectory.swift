import Foundation

/// A fresh directory under the system's temporary directory, removed with everything in it when
/// the last reference goes away.
///
/// Each instance has its own unique name, so tests running in parallel never share one.
public final class TemporaryDirectory: Sendable {
    /// The directory.
    public let url: URL

    /// Creates an empty directory named `<prefix>-<UUID>` under `FileManager.temporaryDirectory`.
    public init(prefix: String = "swerve-test") throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// The directory's path.
    public var path: String { url.path }

    /// `url` with `component` (which may contain slashes) appended.
    public func appending(_ component: String) -> URL { url.appendingPathComponent(component) }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}

/// Runs `body` with a fresh temporary directory and removes the directory when `body` returns or
/// throws.
public func withTemporaryDirectory<R>(
    prefix: String = "swerve-test", _ body: (URL) throws -> R
) throws -> R {
    let directory = try TemporaryDirectory(prefix: prefix)
    return try withExtendedLifetime(directory) { try body(directory.url) }
}

/// Runs `body` with a fresh temporary directory and removes the directory when `body` returns or
/// throws.
public func withTemporaryDirectory<R>(
    prefix: String = "swerve-test", _ body: (URL) async throws -> R
) async throws -> R {
    let directory = try TemporaryDirectory(prefix: prefix)
    defer { withExtendedLifetime(directory) {} }
    return try await body(directory.url)
}
