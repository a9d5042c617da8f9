import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGTERM and SIGINT, taken over from the default handlers (which would end the process at
/// once) as soon as this is made, so a signal that arrives while a service is still starting is
/// not fatal: it is delivered to `next()` instead. A service makes one before it starts anything
/// and waits on it to begin its graceful shutdown, and again for a second signal (which
/// shortens the shutdown). Signals are queued until someone waits; a wait that is cancelled
/// takes none of them.
public final class TerminationSignals: Sendable {
    private struct State {
        var pending: [Int32] = []
        var waiters: [UInt64: CheckedContinuation<Int32?, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())
    private let sources: [SignalSource]

    /// A dispatch signal source handed between threads; its own API is thread-safe.
    private final class SignalSource: @unchecked Sendable {
        let source: any DispatchSourceSignal
        init(_ source: any DispatchSourceSignal) { self.source = source }
    }

    public init() {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        var made: [SignalSource] = []
        for sig in [SIGTERM, SIGINT] {
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            made.append(SignalSource(s))
        }
        sources = made
        for (sig, s) in zip([SIGTERM, SIGINT], sources) {
            s.source.setEventHandler { [weak self] in self?.deliver(sig) }
            s.source.resume()
        }
    }

    deinit {
        for s in sources { s.source.cancel() }
    }

    private func deliver(_ sig: Int32) {
        let waiter: CheckedContinuation<Int32?, Never>? = state.withLock { state in
            if let first = state.waiters.keys.min() { return state.waiters.removeValue(forKey: first) }
            state.pending.append(sig)
            return nil
        }
        waiter?.resume(returning: sig)
    }

    /// Waits for the next SIGTERM or SIGINT and returns its number (nil if the waiting task was
    /// cancelled first).
    public func nextOrCancelled() async -> Int32? {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
                let now: Int32?? = state.withLock { state in
                    if !state.pending.isEmpty { return .some(state.pending.removeFirst()) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    /// Waits for the next SIGTERM or SIGINT and returns its number.
    public func next() async -> Int32 {
        await nextOrCancelled() ?? SIGTERM
    }

    /// Waits up to `duration` for the next signal; nil when none came.
    public func next(within duration: Duration) async -> Int32? {
        await withTaskGroup(of: Int32?.self) { group in
            group.addTask {
                try? await Task.sleep(for: duration)
                return nil
            }
            group.addTask { await self.nextOrCancelled() }
            var signal = await group.next() ?? nil
            group.cancelAll()
            // A signal delivered between the sleep's end and the cancellation is the waiter's
            // result: keep it rather than drop it with the group.
            for await late in group where signal == nil { signal = late }
            return signal
        }
    }
}
