import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGTERM and SIGINT, taken over from the default handlers (which would end the process at
/// once) as soon as this is made, so a signal that arrives while a service is still starting is
/// not fatal: it is delivered to `next()` instead. A service makes one before it starts anything
/// and waits on it to begin its graceful shutdown.
public final class TerminationSignals: Sendable {
    private let signals: AsyncStream<Int32>
    private let sources: [SignalSource]

    /// A dispatch signal source handed between threads; its own API is thread-safe.
    private final class SignalSource: @unchecked Sendable {
        let source: any DispatchSourceSignal
        init(_ source: any DispatchSourceSignal) { self.source = source }
    }

    public init() {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        signals = stream
        sources = [SIGTERM, SIGINT].map { sig in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { continuation.yield(sig) }
            s.resume()
            return SignalSource(s)
        }
    }

    deinit {
        for s in sources { s.source.cancel() }
    }

    /// Waits for the next SIGTERM or SIGINT and returns its number.
    public func next() async -> Int32 {
        var iterator = signals.makeAsyncIterator()
        return await iterator.next() ?? SIGTERM
    }
}
