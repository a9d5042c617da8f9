import Synchronization
import SwerveStatus

// What one connection may hold and how long it may wait: the request-body memory budgets and
// the connection's watchdog (handshake, idle, stalled request bodies, keepalive). Plain values
// with no NIO and no nghttp2, so the accounting and the timing rules are tested without a
// socket; `GRPCServerConnectionHandler` carries out what they decide.

/// The server-wide memory budget for request bodies: one object shared by every connection of
/// a `GRPCServer` (lock-free, an atomic counter). Connections charge it as request bytes
/// arrive, alongside their own per-connection budget, and release what they charged when the
/// stream closes or is refused.
public final class GRPCRequestMemoryBudget: Sendable {
    /// The most request-body bytes all connections together may hold.
    public let limit: Int
    private let used = Atomic<Int>(0)

    /// A budget of `limit` bytes (at least 1).
    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Bytes charged now.
    public var usedBytes: Int { used.load(ordering: .relaxed) }

    /// Charges `bytes` if the total stays within the limit; false (and nothing charged) if not.
    /// A compare-exchange loop, so a charge that does not fit never shows in the total: a
    /// connection is refused only when the bytes really held leave no room (an add-then-undo
    /// could make two connections racing near the limit refuse each other).
    func tryCharge(_ bytes: Int) -> Bool {
        var current = used.load(ordering: .relaxed)
        while true {
            let total = current &+ bytes
            if total > limit { return false }
            let (exchanged, original) = used.weakCompareExchange(
                expected: current, desired: total, successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Gives back bytes charged earlier.
    func release(_ bytes: Int) {
        used.wrappingSubtract(bytes, ordering: .relaxed)
    }
}

/// One connection's share of the request-body budgets: its own limit and the server's pool.
/// Confined to the connection's event loop; the server pool is the only shared part.
struct ConnectionRequestBudget {
    /// Which budget refused a charge.
    enum Refusal: Equatable {
        case connection(limit: Int)
        case server(limit: Int)
    }

    let connectionLimit: Int
    let server: GRPCRequestMemoryBudget?
    /// Bytes this connection holds now (also charged to `server`).
    private(set) var used = 0

    init(connectionLimit: Int, server: GRPCRequestMemoryBudget?) {
        self.connectionLimit = connectionLimit
        self.server = server
    }

    /// Charges `bytes` to both budgets, or to neither and says which refused.
    @inline(__always)
    mutating func charge(_ bytes: Int) -> Refusal? {
        if used + bytes > connectionLimit { return .connection(limit: connectionLimit) }
        if let server, !server.tryCharge(bytes) { return .server(limit: server.limit) }
        used += bytes
        return nil
    }

    /// Gives back `bytes` charged earlier to both budgets.
    @inline(__always)
    mutating func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        used -= bytes
        server?.release(bytes)
    }

    /// The status a stream refused for `refusal` is answered with.
    static func status(for refusal: Refusal) -> GRPCStatus {
        switch refusal {
        case .connection(let limit):
            GRPCStatus(
                .resourceExhausted,
                "request refused: the request bodies in flight on this connection would exceed its memory budget of "
                    + "\(describeBytes(limit)) (max-connection-request-bytes); send fewer or smaller requests at once")
        case .server(let limit):
            GRPCStatus(
                .resourceExhausted,
                "request refused: the request bodies in flight on this server would exceed its memory budget of "
                    + "\(describeBytes(limit)) (max-server-request-bytes); retry later")
        }
    }
}

/// "64 MiB", "1.5 GiB", "1000 bytes": for messages a person reads.
func describeBytes(_ bytes: Int) -> String {
    let units: [(Int, String)] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
    for (size, name) in units where bytes >= size {
        if bytes % size == 0 { return "\(bytes / size) \(name)" }
        let tenths = (bytes * 10 + size / 2) / size
        return "\(tenths / 10).\(tenths % 10) \(name)"
    }
    return "\(bytes) bytes"
}

/// "10 s", "250 ms": for messages a person reads.
func describeDuration(_ nanoseconds: UInt64) -> String {
    if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000) s" }
    if nanoseconds >= 1_000_000_000 {
        let tenths = nanoseconds / 100_000_000
        return "\(tenths / 10).\(tenths % 10) s"
    }
    return "\(nanoseconds / 1_000_000) ms"
}

/// The timing rules of one server connection, checked by one coarse per-connection tick
/// rather than a timer per request: the hot path only sets flags (`sawRead`, a stream's
/// progress) and the tick turns them into times. Times are uptime nanoseconds.
///
/// - Handshake: the client's preface and first SETTINGS must arrive within `handshake`.
/// - Idle: a connection with no open stream for `idle` gets GOAWAY (gRPC's
///   max_connection_idle), then closes.
/// - Keepalive: after `keepaliveInterval` with nothing read, the server sends a PING; no ACK
///   within `keepaliveTimeout` closes the connection (gRPC's keepalive_time/_timeout).
/// - Close grace: a connection that is closing (GOAWAY sent, or ended for a protocol error or
///   a limit) but still open after `closeGrace` (a peer that does not read our last bytes) is
///   closed without waiting more.
///
/// - Graceful close (server shutdown, or the connection's age): a GOAWAY that announces the
///   end without refusing anything yet (nghttp2's shutdown notice, last-stream-id 2^31−1), and
///   `goAwayNoticeDelay` later the final GOAWAY naming the last stream processed. A request the
///   client sent before it saw the notice is still served; one it sends after the final GOAWAY
///   is one it knows was not processed, which clients (and HAProxy) may retry elsewhere.
/// - Age: a connection older than `maxAge` × its jitter (0.9–1.1) is closed gracefully (gRPC's
///   max_connection_age); its calls may run for `maxAgeGrace` after the notice, then the
///   connection is closed and what is left cancelled.
///
/// Stalled request bodies are per stream (`StreamStallClock`), checked on the same tick.
struct ConnectionWatchdog {
    struct Timeouts: Equatable {
        var handshake: UInt64?
        var idle: UInt64?
        var requestBody: UInt64?
        /// The most time a request body may take from its headers to its end (paused time not counted).
        var requestBodyTotal: UInt64? = nil
        var responseWindow: UInt64? = nil
        var keepaliveInterval: UInt64?
        var keepaliveTimeout: UInt64
        var closeGrace: UInt64 = 5_000_000_000
        var maxAge: UInt64? = nil
        var maxAgeGrace: UInt64? = nil
        /// From the shutdown notice to the final GOAWAY: long enough for the notice to reach the
        /// client and for what it sent before it to arrive. Not part of `tick` (it would make
        /// every connection tick 5× a second): the final GOAWAY goes out on the first tick after
        /// it, within a second more.
        var goAwayNoticeDelay: UInt64 = 1_000_000_000

        /// The tick period: a fifth of the shortest timeout, between 10 ms and 1 s, so a
        /// timeout fires at most 20% (or 1 s) late.
        var tick: UInt64 {
            let shortest = [handshake, idle, requestBody, requestBodyTotal, responseWindow, keepaliveInterval, keepaliveTimeout, closeGrace,
                            maxAge, maxAgeGrace]
                .compactMap { $0 }.min() ?? 1_000_000_000
            return min(max(shortest / 5, 10_000_000), 1_000_000_000)
        }
    }

    /// What the connection does after a tick.
    enum Action: Equatable {
        case none
        /// No preface/SETTINGS in time: close (nothing useful can be said to the peer).
        case closeHandshakeTimedOut
        /// Idle too long: GOAWAY(NO_ERROR), then close once it is written.
        case goAwayIdle
        /// Send a keepalive PING.
        case sendPing
        /// The keepalive PING got no ACK in time: close.
        case closeKeepaliveTimedOut
        /// Closing took longer than the grace: close now, dropping unwritten bytes.
        case forceClose
        /// The connection reached its age: send the shutdown notice (the first GOAWAY).
        case sendAgeNotice
        /// A graceful close's notice went out `goAwayNoticeDelay` ago: send the final GOAWAY.
        case sendFinalGoAway
        /// The calls of a connection past its age outran `maxAgeGrace`: cancel them and close.
        case closeAgeGraceExpired
    }

    /// Why a connection is closing gracefully.
    enum GracefulClose: Equatable {
        case shutdown
        case age
    }

    let timeouts: Timeouts
    private let startedAt: UInt64
    private var handshakeDone = false
    /// When the connection was last seen with no open stream and no stream opened since
    /// (nil: busy at the last tick).
    private var idleSince: UInt64?
    private var lastStreamsOpened: UInt64 = 0
    private var lastReadAt: UInt64
    private var pingSentAt: UInt64?
    private var goAwaySent = false
    private var closingSince: UInt64?
    /// This connection's age limit: `maxAge` times its jitter.
    let ageLimit: UInt64?
    /// A graceful close in progress: why, when its notice went out, whether the final GOAWAY has.
    private(set) var gracefulClose: GracefulClose?
    private var noticeSentAt: UInt64 = 0
    private var finalGoAwaySent = false

    /// `ageJitter`: the factor (0.9–1.1, drawn per connection) applied to `maxAge`.
    init(timeouts: Timeouts, now: UInt64, ageJitter: Double = 1) {
        self.timeouts = timeouts
        startedAt = now
        lastReadAt = now
        idleSince = now
        ageLimit = timeouts.maxAge.map { UInt64((Double($0) * ageJitter).rounded()) }
    }

    /// A graceful close begins now (the caller sends the shutdown notice); false when one is
    /// already under way.
    mutating func beginGracefulClose(_ reason: GracefulClose, now: UInt64) -> Bool {
        guard gracefulClose == nil else { return false }
        gracefulClose = reason
        noticeSentAt = now
        return true
    }

    /// The client's first SETTINGS arrived (after a valid preface).
    mutating func handshakeCompleted() { handshakeDone = true }

    /// A keepalive PING was acknowledged: the next one is due an interval after it was sent.
    mutating func pingAcknowledged() {
        if let sent = pingSentAt { lastReadAt = max(lastReadAt, sent) }
        pingSentAt = nil
    }

    /// One tick. `sawRead`: bytes were read since the last tick. `openStreams`: streams open
    /// now; `streamsOpened`: streams opened since the connection began (so a connection whose
    /// streams open and close between two ticks is not idle). `closing`: the connection is on
    /// its way out (GOAWAY sent or the session ended).
    mutating func tick(now: UInt64, sawRead: Bool, openStreams: Int, streamsOpened: UInt64, closing: Bool) -> Action {
        if closing || goAwaySent {
            let since = closingSince ?? now
            closingSince = since
            return now &- since >= timeouts.closeGrace ? .forceClose : .none
        }
        if !handshakeDone {
            if let limit = timeouts.handshake, now &- startedAt >= limit { return .closeHandshakeTimedOut }
            return .none
        }
        if let reason = gracefulClose {
            if !finalGoAwaySent && now &- noticeSentAt >= timeouts.goAwayNoticeDelay {
                finalGoAwaySent = true
                return .sendFinalGoAway
            }
            // Never before the final GOAWAY: until it, the client may still be sending calls
            // it has every right to have served.
            if reason == .age, finalGoAwaySent, let grace = timeouts.maxAgeGrace, now &- noticeSentAt >= grace {
                // Once: the connection is closed now; later ticks see it closing.
                goAwaySent = true
                closingSince = now
                return .closeAgeGraceExpired
            }
        } else if let limit = ageLimit, now &- startedAt >= limit {
            gracefulClose = .age
            noticeSentAt = now
            return .sendAgeNotice
        }
        if sawRead {
            lastReadAt = now
            pingSentAt = nil  // anything read shows the peer is alive
        }
        if let sent = pingSentAt {
            if now &- sent >= timeouts.keepaliveTimeout { return .closeKeepaliveTimedOut }
        } else if let interval = timeouts.keepaliveInterval, now &- lastReadAt >= interval {
            pingSentAt = now
            return .sendPing
        }
        if openStreams > 0 || streamsOpened != lastStreamsOpened {
            lastStreamsOpened = streamsOpened
            idleSince = openStreams > 0 ? nil : now
        } else if idleSince == nil {
            idleSince = now
        }
        if let limit = timeouts.idle, let since = idleSince, now &- since >= limit {
            goAwaySent = true
            closingSince = now
            return .goAwayIdle
        }
        return .none
    }
}

/// When a stream's request body last made progress, on the connection's tick: the hot path
/// only sets `progressed`; the tick turns it into a time. A stream that is still waiting for
/// request bytes after `limit` is stalled. It also adds up the time the stream has been
/// ticked while not paused (`activeNanos`), which no progress resets: the total a request
/// body may take.
struct StreamStallClock {
    /// Request bytes (or headers) arrived since the last tick.
    var progressed = true
    private var quietSince: UInt64 = 0
    private var known = false
    private var lastTick: UInt64 = 0
    /// Time between the first tick and the last, less the ticks spent paused.
    private(set) var activeNanos: UInt64 = 0

    /// One tick for a stream whose request is incomplete. Returns true when it has been quiet
    /// for `limit`. While `paused` (the server is not reading: backpressure), the client cannot
    /// be blamed, so the clock restarts.
    mutating func tick(now: UInt64, limit: UInt64, paused: Bool) -> Bool {
        if known && !paused { activeNanos &+= now &- lastTick }
        lastTick = now
        if progressed || paused || !known {
            progressed = false
            quietSince = now
            known = true
            return false
        }
        return now &- quietSince >= limit
    }
}
