#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Names the calling thread as `top -H`, `perf` and `/proc/<pid>/task/*/comm` show it. Call it
/// first thing in a thread's body. Linux keeps at most 15 bytes of a thread's name and refuses a
/// longer one outright (ERANGE): Foundation's `Thread.name` of "swerve-worker
/// breast_cancer_logreg:1 #0" was refused, so the batcher's workers went by the name they
/// inherited from libdispatch ("oot.default-qos"). This cuts the name to fit instead.
/// (Through /proc/thread-self/comm: Swift's Glibc module does not declare
/// pthread_setname_np, which needs _GNU_SOURCE.)
public func nameCurrentThread(_ name: String) {
    #if os(Linux)
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(osThreadName(name).utf8)
    _ = bytes.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count) }
    #endif
}

/// `name` cut to the 15 UTF-8 bytes a Linux thread name holds, at a character boundary.
public func osThreadName(_ name: String) -> String {
    var out = ""
    var bytes = 0
    for ch in name {
        let n = ch.utf8.count
        guard bytes + n <= 15 else { break }
        out.append(ch)
        bytes += n
    }
    return out
}
