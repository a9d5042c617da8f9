// Listening sockets that do not outlive a crash.
//
// On a crash the Swift runtime's handler (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP,
// SIGQUIT) suspends the other threads and spawns `swift-backtrace`, which reads the crashed
// process's memory, symbolicates and prints the report, and waits for it: one to several
// seconds, up to the backtracer's timeout. All that time the crashed process still has its
// listening sockets open, and so does the backtracer: SwiftNIO creates sockets without
// SOCK_CLOEXEC (2.101: socket(2) with SOCK_NONBLOCK only, accept4(2) with SOCK_NONBLOCK only),
// so every descriptor is inherited. A supervisor restarting the server on the same port gets
// EADDRINUSE until both are gone. Worse, an externally sent SIGSEGV/SIGABRT (kill -SEGV) was
// survived: the runtime's handler returns after the report, the process goes on serving with
// its crash handlers reset, and the port is never released.
//
// So:
// * Listening sockets are made here, with SOCK_CLOEXEC (and SO_REUSEADDR), bound, and handed to
//   NIO with `ServerBootstrap.withBoundSocket`. No exec'd program inherits them.
// * `CrashPortRelease` installs a handler for the same signals in front of the runtime's. It
//   shuts down every registered listening socket (shutdown(2) acts on the socket, not the
//   descriptor, so it also covers copies the process may have handed out, and it leaves no
//   descriptor number to be reused), marks every other descriptor close-on-exec (accepted
//   connections included, which NIO does not mark; one close_range(2) call), calls the
//   runtime's handler (the backtrace report is unchanged), then restores the default action and
//   re-raises, so the process dies with the signal even when the signal was sent from outside.
//   The port is free from the first instruction of the crash handling, not seconds later.
//
// Everything the handler does is async-signal-safe: atomic loads from a table allocated before
// the handler was installed, shutdown, close_range (looked up once with dlsym, since Glibc's
// module does not export it) or fcntl, sigaction, raise.

import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc

/// Creating listening sockets the way the server wants them.
public enum ListeningSocket {
    /// A TCP socket bound to `host`:`port`, close-on-exec, non-blocking, SO_REUSEADDR, not yet
    /// listening (NIO's `withBoundSocket` calls listen). Registered with `CrashPortRelease`.
    /// The caller hands it to `ServerBootstrap.withBoundSocket` and, once the channel is up,
    /// calls `setBacklog` (NIO listens with its default backlog of 128).
    public static func bind(host: String, port: Int) throws -> CInt {
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let type = CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue) | CInt(SOCK_NONBLOCK.rawValue)
        let fd = socket(CInt(address.protocol.rawValue), type, 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        do {
            var one: CInt = 1
            guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                throw IOError(errnoCode: errno, reason: "setsockopt(SO_REUSEADDR)")
            }
            let bound = address.withSockAddr { pointer, size in Glibc.bind(fd, pointer, socklen_t(size)) }
            guard bound == 0 else {
                throw IOError(errnoCode: errno, reason: "bind(\(address))")
            }
        } catch {
            close(fd)
            throw error
        }
        CrashPortRelease.register(fd)
        return fd
    }

    /// Sets the accept queue length of a listening socket (listen(2) again only updates it).
    public static func setBacklog(_ fd: CInt, _ backlog: CInt) throws {
        guard listen(fd, backlog) == 0 else { throw IOError(errnoCode: errno, reason: "listen") }
    }

    /// Whether `fd` has FD_CLOEXEC set.
    public static func isCloseOnExec(_ fd: CInt) -> Bool {
        let flags = fcntl(fd, F_GETFD)
        return flags >= 0 && flags & FD_CLOEXEC != 0
    }
}

/// Releases the registered listening sockets when the process crashes (see the file comment).
public enum CrashPortRelease {
    private static let capacity = 32
    /// Registered listening descriptors, -1 for a free slot. Allocated (and so initialized)
    /// before the signal handler is installed: the handler only loads from it. Every access is
    /// atomic, hence `nonisolated(unsafe)` on the pointer itself.
    nonisolated(unsafe) private static let slots: UnsafeMutablePointer<Atomic<CInt>> = {
        let slots = UnsafeMutablePointer<Atomic<CInt>>.allocate(capacity: capacity)
        for i in 0..<capacity { (slots + i).initialize(to: Atomic(-1)) }
        return slots
    }()
    /// The action each signal had before ours, by signal number: written once, under
    /// `installed`, before our handler (its only reader) is installed.
    nonisolated(unsafe) fileprivate static let previous: UnsafeMutablePointer<sigaction> = {
        let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
        previous.initialize(repeating: sigaction(), count: 65)
        return previous
    }()
    fileprivate typealias CloseRange = @convention(c) (CUnsignedInt, CUnsignedInt, CInt) -> CInt
    fileprivate static let closeRange: CloseRange? = {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "close_range") else { return nil }
        return unsafeBitCast(symbol, to: CloseRange.self)
    }()
    /// Descriptors to mark one by one when close_range is missing.
    fileprivate static let descriptorCeiling: CInt = CInt(clamping: min(ListenerLimits.descriptorLimit() ?? 65536, 65536))
    /// The signals the Swift runtime's crash handler takes.
    fileprivate static let signals: [CInt] = [SIGQUIT, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP]
    private static let installed = Mutex(false)

    /// Adds `fd` to the sockets shut down on a crash, installing the handler on first use.
    /// Silently does nothing when all slots are taken (the socket is still close-on-exec).
    public static func register(_ fd: CInt) {
        installOnce()
        for i in 0..<capacity where (slots + i).pointee.compareExchange(expected: -1, desired: fd, ordering: .sequentiallyConsistent).exchanged {
            return
        }
    }

    /// Forgets `fd`; call before closing it, so a crash never shuts down a reused number.
    public static func unregister(_ fd: CInt) {
        for i in 0..<capacity where (slots + i).pointee.compareExchange(expected: fd, desired: -1, ordering: .sequentiallyConsistent).exchanged {
            return
        }
    }

    /// Installs the crash handler in front of whatever handles the crash signals now.
    public static func installOnce() {
        installed.withLock { done in
            guard !done else { return }
            done = true
            // Touch every static the handler reads, so none is first initialized in the handler.
            _ = slots; _ = closeRange; _ = descriptorCeiling
            let previous = self.previous
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = crashSignalHandler
            action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER
            sigfillset(&action.sa_mask)
            for signal in signals { sigdelset(&action.sa_mask, signal) }
            for signal in signals {
                sigaction(signal, &action, previous + Int(signal))
            }
        }
    }

    /// Runs in the signal handler: shut the listeners down, mark every descriptor close-on-exec.
    fileprivate static func releaseForCrash() {
        for i in 0..<capacity {
            let fd = (slots + i).pointee.load(ordering: .sequentiallyConsistent)
            if fd >= 0 { shutdown(fd, CInt(SHUT_RDWR)) }
        }
        if closeRange?(3, CUnsignedInt.max, 4 /* CLOSE_RANGE_CLOEXEC */) == 0 { return }
        var fd: CInt = 3
        while fd < descriptorCeiling {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
            fd += 1
        }
    }
}

private let crashSignalHandler: @convention(c) (CInt, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = { signal, info, context in
    CrashPortRelease.releaseForCrash()
    let previous = CrashPortRelease.previous[Int(signal)]
    if previous.sa_flags & SA_SIGINFO != 0 {
        previous.__sigaction_handler.sa_sigaction?(signal, info, context)
    } else if let handler = previous.__sigaction_handler.sa_handler {
        // SIG_DFL is 0 (nil here) and SIG_IGN is 1: only a real function is called.
        if unsafeBitCast(handler, to: Int.self) != 1 { handler(signal) }
    }
    // The runtime's handler returns once the report is written; a fault would then recur, but
    // a signal sent with kill(2) would not. Die with the signal either way.
    var action = sigaction()
    action.__sigaction_handler.sa_handler = nil  // SIG_DFL
    sigemptyset(&action.sa_mask)
    sigaction(signal, &action, nil)
    var unblock = sigset_t()
    sigemptyset(&unblock)
    sigaddset(&unblock, signal)
    pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    raise(signal)
}
#endif
