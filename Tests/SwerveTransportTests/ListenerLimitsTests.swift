import Foundation
import NIOCore
import SwerveTesting
import Testing

@testable import SwerveTransport

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ListenerLimitsPolicyTests {
    @Test func defaultConnectionLimitLeavesDescriptorsForTheRestOfTheServer() {
        #expect(ListenerLimits.defaultMaxConnections(descriptorLimit: nil) == 4096)
        #expect(ListenerLimits.defaultMaxConnections(descriptorLimit: 1_048_576) == 4096)
        #expect(ListenerLimits.defaultMaxConnections(descriptorLimit: 1024) == 1024 - 128)
        #expect(ListenerLimits.defaultMaxConnections(descriptorLimit: 64) == 1)
    }

    @Test func acceptBackoffDoublesFrom20MsToOneSecond() {
        let delays = (1...9).map { ListenerLimits.acceptBackoff(consecutiveErrors: $0).nanoseconds / 1_000_000 }
        #expect(delays == [20, 40, 80, 160, 320, 640, 1000, 1000, 1000])
    }

    @Test func onlyResourceExhaustionBacksOff() {
        #expect(ListenerLimits.isResourceExhaustion(EMFILE))
        #expect(ListenerLimits.isResourceExhaustion(ENFILE))
        #expect(ListenerLimits.isResourceExhaustion(ENOBUFS))
        #expect(ListenerLimits.isResourceExhaustion(ENOMEM))
        #expect(!ListenerLimits.isResourceExhaustion(ECONNABORTED))
    }

    @Test func rateLimitedLogLogsTheFirstThenOneLinePerIntervalWithTheCount() {
        var log = RateLimitedLog(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(log.record(at: start) == 1)
        #expect(log.record(at: start + .seconds(1)) == nil)
        #expect(log.record(at: start + .seconds(9)) == nil)
        #expect(log.record(at: start + .seconds(10)) == 3)
        #expect(log.record(at: start + .seconds(11)) == nil)
        #expect(log.record(at: start + .seconds(30)) == 2)
    }
}

#if canImport(Glibc)
/// Raw TCP clients, so the test controls exactly how many connections exist.
private struct RawConnection: ~Copyable {
    let fd: CInt

    init(port: Int) throws {
        fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)  // every recv below is bounded
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw IOError(errnoCode: code, reason: "connect")
        }
    }

    deinit { close(fd) }

    /// Sends the HTTP/2 client preface and an empty SETTINGS frame, and reads what comes back:
    /// the server's first bytes (> 0), 0 for end of file, -1 for an error such as a reset or
    /// the 5 s receive timeout (then `errno` says which).
    func greet() -> (received: Int, errno: CInt) {
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
        _ = preface.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, CInt(MSG_NOSIGNAL)) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return (received, received < 0 ? errno : 0)
    }
}

@Suite struct ListenerTests {
    @Test func theListeningSocketIsCloseOnExec() async throws {
        try await withTestServer { server, _ in
            let listening = try #require(try Self.listeningDescriptor(port: server.port))
            #expect(ListeningSocket.isCloseOnExec(listening))
        }
    }

    @Test func connectionsAboveTheLimitAreClosedAtOnceAndTheOthersKeepWorking() async throws {
        try await withTestServer(configure: { $0.maxConnections = 2 }) { server, _ in
            let first = try RawConnection(port: server.port)
            let second = try RawConnection(port: server.port)
            #expect(first.greet().received > 0)
            #expect(second.greet().received > 0)

            let third = try RawConnection(port: server.port)
            let refused = third.greet()
            // Closed by the server (EOF, or a reset because it never read the preface), not timed out.
            #expect(refused.received == 0 || (refused.received < 0 && refused.errno == ECONNRESET))
            #expect(server.activeConnectionCount <= 2)

            // The count goes down when a connection closes: a new one is served again.
            _ = consume first
            try await waitUntil("a connection above the limit is served after one closed") {
                let again = try RawConnection(port: server.port)
                return again.greet().received > 0
            }
            _ = consume second
        }
    }

    /// The descriptor of the socket listening on `port` in this process, found through /proc.
    static func listeningDescriptor(port: Int) throws -> CInt? {
        for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            guard let fd = CInt(name),
                  let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
                  target.hasPrefix("socket:") else { continue }
            var listening: CInt = 0
            var length = socklen_t(MemoryLayout<CInt>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 1 else { continue }
            var address = sockaddr_storage()
            var addressLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &addressLength) }
            }
            guard named == 0, address.ss_family == sa_family_t(AF_INET) else { continue }
            let boundPort = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
            if boundPort == port { return fd }
        }
        return nil
    }
}
#endif
