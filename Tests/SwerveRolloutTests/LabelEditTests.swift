import SwerveRepository
import Testing
@testable import SwerveRollout

@Suite struct LabelEditTests {
    @Test func parsesAssignmentsAndRefusesNonsense() throws {
        let e = try LabelEdit(assignments: ["stable=3", "canary=4"], canaryPercent: 10, clearCanary: false)
        #expect(e == LabelEdit(stable: 3, canary: 4, canaryPercent: 10))
        for bad in [["stable=0"], ["stable=x"], ["stable"], ["beta=2"], ["stable=1", "stable=2"], ["canary=-1"]] {
            #expect(throws: LabelStoreError.self) { try LabelEdit(assignments: bad, canaryPercent: nil, clearCanary: false) }
        }
        #expect(throws: LabelStoreError.self) { try LabelEdit(assignments: [], canaryPercent: 101, clearCanary: false) }
        #expect(throws: LabelStoreError.self) { try LabelEdit(assignments: [], canaryPercent: .nan, clearCanary: false) }
        #expect(throws: LabelStoreError.self) { try LabelEdit(assignments: ["canary=2"], canaryPercent: nil, clearCanary: true) }
        #expect(try LabelEdit(assignments: [], canaryPercent: nil, clearCanary: false).isEmpty)
    }

    @Test func appliesToLabels() {
        let now = ModelLabels(stable: 1, canary: 2, canaryPercent: 25, generation: 7)
        // A new canary starts at 0%; the generation is kept for the compare-and-set.
        var next = LabelEdit(canary: 3).applied(to: now)
        #expect(next.canary == 3 && next.canaryPercent == 0 && next.generation == 7)
        next = LabelEdit(canary: 3, canaryPercent: 5).applied(to: now)
        #expect(next.canary == 3 && next.canaryPercent == 5)
        // Same canary, new share.
        next = LabelEdit(canaryPercent: 50).applied(to: now)
        #expect(next.canary == 2 && next.canaryPercent == 50)
        next = LabelEdit(clearCanary: true).applied(to: now)
        #expect(next.canary == nil && next.canaryPercent == 0 && next.stable == 1)
        // Stable onto the canary: a promotion by hand clears the canary.
        next = LabelEdit(stable: 2).applied(to: now)
        #expect(next.stable == 2 && next.canary == nil && next.canaryPercent == 0)
        #expect(LabelEdit(stable: 2).versionsNamed(in: next) == [2])
        #expect(LabelEdit(stable: 1).versionsNamed(in: now) == [1, 2])
    }
}
