import Testing
@testable import SwerveTraining
@Test func codeVersionIsSet() { #expect(!SwerveTraining.codeVersion.isEmpty) }
