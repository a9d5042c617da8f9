import Foundation
import Synchronization
import Testing
@testable import SwerveInference

@Suite struct ThreadNameTests {
    @Test func namesAreCutToWhatLinuxKeeps() {
        #expect(osThreadName("wk0 breast_cancer_logreg:1") == "wk0 breast_canc")
        #expect(osThreadName("model-load") == "model-load")
        #expect(osThreadName(String(repeating: "a", count: 15)) == String(repeating: "a", count: 15))
        // At a character boundary: "µ" takes two bytes and would be the 15th and 16th.
        #expect(osThreadName(String(repeating: "a", count: 14) + "µs") == String(repeating: "a", count: 14))
    }

    @Test func aLongNameStillNamesTheThread() {
        let name = Mutex<String>("")
        let done = DispatchSemaphore(value: 0)
        let t = Thread {
            nameCurrentThread("plog breast_cancer_logreg")
            let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            name.withLock { $0 = comm.trimmingCharacters(in: .newlines) }
            done.signal()
        }
        t.start()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(name.withLock { $0 } == "plog breast_can")
    }
}
