import Testing

@testable import SwerveTransport

/// The watchdog's graceful close (shutdown notice, then the final GOAWAY) and connection age
/// (gRPC A9: max_connection_age with ±10% jitter, max_connection_age_grace), as pure decisions.
@Suite struct ConnectionAgeTests {
    typealias Dog = ConnectionWatchdog

    static func timeouts(age: Double?, grace: Double?, notice: Double = 1) -> Dog.Timeouts {
        var t = Dog.Timeouts(handshake: seconds(10), idle: nil, requestBody: nil, keepaliveInterval: nil, keepaliveTimeout: seconds(20))
        t.maxAge = age.map(seconds)
        t.maxAgeGrace = grace.map(seconds)
        t.goAwayNoticeDelay = seconds(notice)
        return t
    }

    /// A connection with calls running at every tick.
    final class Busy {
        var dog: Dog
        init(_ dog: Dog) { self.dog = dog }
        func at(_ t: Double) -> Dog.Action {
            dog.tick(now: seconds(t), sawRead: true, openStreams: 3, streamsOpened: 10, closing: false)
        }
    }

    @Test func ageSendsTheNoticeThenTheFinalGoawayThenClosesAfterTheGrace() {
        var dog = Dog(timeouts: Self.timeouts(age: 60, grace: 10), now: 0)
        dog.handshakeCompleted()
        let busy = Busy(dog)
        #expect(busy.at(59.9) == .none)
        #expect(busy.at(60) == .sendAgeNotice)
        #expect(busy.dog.gracefulClose == .age)
        #expect(busy.at(60.5) == .none)
        #expect(busy.at(61) == .sendFinalGoAway)
        #expect(busy.at(69.9) == .none)
        #expect(busy.at(70) == .closeAgeGraceExpired)
        // Closed once; later ticks only see a connection on its way out.
        #expect(busy.at(70.2) == .none)
    }

    @Test func aGraceShorterThanTheNoticeDelayStillWaitsForTheFinalGoaway() {
        var dog = Dog(timeouts: Self.timeouts(age: 5, grace: 0), now: 0)
        dog.handshakeCompleted()
        let busy = Busy(dog)
        #expect(busy.at(5) == .sendAgeNotice)
        #expect(busy.at(5.01) == .none)   // calls sent before the client saw the notice still run
        #expect(busy.at(5.5) == .none)
        #expect(busy.at(6) == .sendFinalGoAway)
        #expect(busy.at(6.01) == .closeAgeGraceExpired)
    }

    @Test func withoutAGraceCallsRunAsLongAsTheyTake() {
        var dog = Dog(timeouts: Self.timeouts(age: 5, grace: nil), now: 0)
        dog.handshakeCompleted()
        let busy = Busy(dog)
        #expect(busy.at(5) == .sendAgeNotice)
        #expect(busy.at(6) == .sendFinalGoAway)
        for t in stride(from: 7.0, through: 10_000, by: 500) { #expect(busy.at(t) == .none) }
    }

    @Test func theJitterScalesEachConnectionsAge() {
        let low = Dog(timeouts: Self.timeouts(age: 100, grace: nil), now: 0, ageJitter: 0.9)
        let high = Dog(timeouts: Self.timeouts(age: 100, grace: nil), now: 0, ageJitter: 1.1)
        #expect(low.ageLimit == seconds(90))
        #expect(high.ageLimit == seconds(110))
        var dog = high
        dog.handshakeCompleted()
        let busy = Busy(dog)
        #expect(busy.at(100) == .none)
        #expect(busy.at(110) == .sendAgeNotice)
    }

    @Test func noAgeLimitNeverCloses() {
        var dog = Dog(timeouts: Self.timeouts(age: nil, grace: 1), now: 0)
        dog.handshakeCompleted()
        let busy = Busy(dog)
        #expect(dog.ageLimit == nil)
        for t in stride(from: 1.0, through: 1e6, by: 10_000) { #expect(busy.at(t) == .none) }
    }

    @Test func ageDoesNotCountBeforeTheHandshake() {
        // A connection still in its handshake is the handshake timeout's business.
        var dog = Dog(timeouts: Self.timeouts(age: 1, grace: 1), now: 0)
        let before = dog.tick(now: seconds(2), sawRead: false, openStreams: 0, streamsOpened: 0, closing: false)
        #expect(before == .none)
        dog.handshakeCompleted()
        let busy = Busy(dog)
        #expect(busy.at(3) == .sendAgeNotice)
    }

    @Test func aShutdownCloseGetsItsFinalGoawayButNoGraceFromTheAgeSettings() {
        var dog = Dog(timeouts: Self.timeouts(age: 60, grace: 2), now: 0)
        dog.handshakeCompleted()
        let busy = Busy(dog)
        let began = busy.dog.beginGracefulClose(.shutdown, now: seconds(10))
        let again = busy.dog.beginGracefulClose(.shutdown, now: seconds(10.5))
        #expect(began)
        #expect(!again)  // once
        #expect(busy.at(10.5) == .none)
        #expect(busy.at(11) == .sendFinalGoAway)
        // The server's shutdown timeout bounds these calls, not the age grace; nor does the age
        // start a second close.
        #expect(busy.at(13) == .none)
        #expect(busy.at(61) == .none)
        #expect(busy.dog.gracefulClose == .shutdown)
    }

    @Test func theTickIsShortEnoughForTheAgeButTheNoticeDoesNotShortenIt() {
        #expect(Self.timeouts(age: 1, grace: nil).tick <= seconds(0.2))
        #expect(Self.timeouts(age: 60, grace: 0.5).tick <= seconds(0.1))
        // With defaults (close grace 5 s) a connection ticks once a second, age or not.
        #expect(Self.timeouts(age: nil, grace: nil, notice: 1).tick == seconds(1))
    }
}

private func seconds(_ s: Double) -> UInt64 { UInt64(s * 1e9) }
