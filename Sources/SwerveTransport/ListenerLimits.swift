// The accept path's limits: how many connections may be open at once, and what the listener does
// when accept(2) itself fails.
//
// * A connection above `maxConnections` is accepted and closed at once, before it is registered
//   with an event loop: it costs one accept and one close, it never sits in the backlog (where
//   the kernel would keep completing handshakes for it), and the listener never stops reading,
//   so it cannot spin on a readable socket it refuses to accept. Connections already open are
//   not touched.
// * accept(2) failing with EMFILE/ENFILE/ENOBUFS/ENOMEM (out of descriptors or kernel memory)
//   pauses accepting (autoRead off) for a delay that doubles from 20 ms up to 1 s and resets on
//   the next successful accept (`AcceptErrorBackoffHandler`). Without it NIO retries at once,
//   forever: the pending connection keeps the socket readable and the loop spins at 100% of a
//   core.
// * Both log the first event of a burst at once and then at most one summary line per interval,
//   so a flood cannot flood the log.

import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Told what the listener does, for metrics. Called on the listener's event loop (accepted,
/// rejected, accept failures) or on the connection's (closed); must not block.
public protocol GRPCListenerObserver: Sendable {
    /// A connection was accepted and handed to the server; `open` counts it.
    func connectionOpened(open: Int)
    /// An accepted connection closed; `open` no longer counts it.
    func connectionClosed(open: Int)
    /// A connection was accepted and closed at once because `maxConnections` were open.
    func connectionRejected()
    /// accept(2) failed (`errno`); the listener backs off when the error is one it can recover from.
    func acceptFailed(errno: CInt)
}

/// The listener's limits and their defaults.
public enum ListenerLimits {
    /// Descriptors kept back from client connections in the default limit: model files being
    /// read, the metrics endpoint and its scrapers, each event loop's epoll/eventfd/timerfd,
    /// log files.
    public static let reservedDescriptors = 128
    /// The default's ceiling: enough for any fleet of clients behind a load balancer, small
    /// enough that open connections alone (nghttp2 session and buffers, tens of KiB each when
    /// idle) stay within a few hundred MiB.
    public static let defaultMaxConnectionsCeiling = 4096

    /// The process's soft RLIMIT_NOFILE, or nil when it cannot be read or is unlimited.
    public static func descriptorLimit() -> Int? {
        var limit = rlimit()
        #if canImport(Glibc)
        let ok = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0
        #else
        let ok = getrlimit(RLIMIT_NOFILE, &limit) == 0
        #endif
        guard ok, limit.rlim_cur != rlim_t.max else { return nil }
        return Int(clamping: limit.rlim_cur)
    }

    /// `min(4096, descriptor limit − 128)`, at least 1: connections never use the descriptors
    /// the rest of the server needs, so at the default the listener refuses connections
    /// (cheaply, with a log line) before accept(2) runs out of descriptors.
    public static func defaultMaxConnections(descriptorLimit: Int? = descriptorLimit()) -> Int {
        guard let descriptorLimit else { return defaultMaxConnectionsCeiling }
        return max(1, min(defaultMaxConnectionsCeiling, descriptorLimit - reservedDescriptors))
    }

    /// The delay before retrying accept after the `consecutive`-th (1-based) recoverable error
    /// in a row: 20 ms doubling to at most 1 s.
    public static func acceptBackoff(consecutiveErrors consecutive: Int) -> TimeAmount {
        let shift = min(max(consecutive - 1, 0), 6)
        return .milliseconds(min(1000, Int64(20) << shift))
    }

    /// accept(2) errors that mean "out of a resource, try again later" rather than a broken
    /// listener. ECONNABORTED (the client gave up before we accepted) needs no delay.
    public static func isResourceExhaustion(_ code: CInt) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }
}

/// Decides which events of a burst to log: the first at once, then at most one line per
/// `interval` carrying how many were not logged. A plain value: the caller's event loop owns it.
struct RateLimitedLog {
    let interval: Duration
    private var lastLogged: ContinuousClock.Instant?
    private var suppressed = 0

    init(interval: Duration) { self.interval = interval }

    /// Records one event at `now`; returns how many events this log line stands for (this one
    /// plus those not logged since the last line), or nil when this one is not to be logged.
    mutating func record(at now: ContinuousClock.Instant) -> Int? {
        if let last = lastLogged, now - last < interval {
            suppressed += 1
            return nil
        }
        let count = suppressed + 1
        lastLogged = now
        suppressed = 0
        return count
    }
}

/// Open connections, counted on the listener's loop (increments) and on each connection's loop
/// (decrements, when it closes).
final class ConnectionCounter: Sendable {
    private let open = Atomic<Int>(0)
    var current: Int { open.load(ordering: .relaxed) }
    func increment() -> Int { open.add(1, ordering: .relaxed).newValue }
    func decrement() -> Int { open.subtract(1, ordering: .relaxed).newValue }
}

/// On the listening channel, in front of NIO's AcceptHandler: counts connections and closes
/// those above the limit before anything else sees them (or registers them with a loop).
final class ConnectionLimitHandler: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let maxConnections: Int
    private let counter: ConnectionCounter
    private let observer: (any GRPCListenerObserver)?
    private let logger: Logger
    private var rejections = RateLimitedLog(interval: .seconds(10))

    init(maxConnections: Int, counter: ConnectionCounter, observer: (any GRPCListenerObserver)?, logger: Logger) {
        self.maxConnections = maxConnections
        self.counter = counter
        self.observer = observer
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let accepted = unwrapInboundIn(data)
        // Only this loop increments, so the count cannot pass the limit between check and add.
        guard counter.current < maxConnections else {
            accepted.close(promise: nil)
            observer?.connectionRejected()
            if let count = rejections.record(at: .now) {
                logger.warning("refused connection(s): \(maxConnections) connections open, the --max-connections limit", metadata: [
                    "grpc.refused": "\(count)", "grpc.peer": "\(accepted.remoteAddress?.description ?? "?")"])
            }
            return
        }
        let open = counter.increment()
        observer?.connectionOpened(open: open)
        let counter = self.counter
        let observer = self.observer
        accepted.closeFuture.whenComplete { _ in
            let open = counter.decrement()
            observer?.connectionClosed(open: open)
        }
        context.fireChannelRead(data)
    }
}

@available(*, unavailable)
extension ConnectionLimitHandler: Sendable {}

/// On a listening channel: when accept(2) fails for want of descriptors or memory, stops
/// reading (autoRead off, which takes the socket out of epoll) and resumes after
/// `ListenerLimits.acceptBackoff`, logging the first error of a burst and when accepting works
/// again.
///
/// Why not NIO's `AcceptBackoffHandler`: it delays the next `read()`, but after a failed
/// accept NIO (2.101) still has a read pending and the socket registered for readability, so
/// no `read()` comes to delay and the loop goes on calling accept at full speed (measured:
/// 200,000 EMFILE in 6 s with it in the pipeline).
public final class AcceptErrorBackoffHandler: ChannelInboundHandler {
    public typealias InboundIn = any Channel
    public typealias InboundOut = any Channel

    private let observer: (any GRPCListenerObserver)?
    private let logger: Logger
    private let hint: String
    private var errorLog = RateLimitedLog(interval: .seconds(10))
    /// Recoverable accept errors since the last successful accept, and when the run began.
    private var consecutiveErrors = 0
    private var errorsSince: ContinuousClock.Instant?
    private var resume: Scheduled<Void>?

    /// - Parameters:
    ///   - hint: added to the EMFILE log line: what the operator can change.
    public init(observer: (any GRPCListenerObserver)? = nil, logger: Logger, hint: String = "") {
        self.observer = observer
        self.logger = logger
        self.hint = hint
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let since = errorsSince {
            logger.notice("accepting connections again", metadata: [
                "accept_errors": "\(consecutiveErrors)", "paused_for": "\(ContinuousClock.now - since)"])
            consecutiveErrors = 0
            errorsSince = nil
        }
        context.fireChannelRead(data)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError else {
            context.fireErrorCaught(error)
            return
        }
        observer?.acceptFailed(errno: error.errnoCode)
        // ECONNABORTED and the like: the next accept may well succeed; NIO keeps the listener.
        guard ListenerLimits.isResourceExhaustion(error.errnoCode) else { return }
        consecutiveErrors += 1
        if errorsSince == nil { errorsSince = .now }
        let delay = ListenerLimits.acceptBackoff(consecutiveErrors: consecutiveErrors)
        if let count = errorLog.record(at: .now) {
            var detail = ""
            if error.errnoCode == EMFILE, let limit = ListenerLimits.descriptorLimit() {
                detail = " (descriptor limit \(limit)\(hint))"
            }
            logger.error("accept failed: \(String(cString: strerror(error.errnoCode)))\(detail); pausing accept for \(delay.nanoseconds / 1_000_000) ms", metadata: [
                "accept_errors": "\(count)"])
        }
        let channel = context.channel
        guard (try? channel.syncOptions?.setOption(.autoRead, value: false)) != nil else { return }
        resume?.cancel()
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            self?.resume = nil
            try? channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension AcceptErrorBackoffHandler: Sendable {}
