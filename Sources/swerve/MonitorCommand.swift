import ArgumentParser
import Foundation
import SwerveClient
import SwerveProto

#if canImport(Glibc)
import Glibc
#endif

/// `swerve monitor --model M`: the drift monitor of a model's served versions
/// (ServingInsights/Drift) as a table in the terminal, refreshed every `--interval` seconds.
struct MonitorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Watch a served model's inputs and outputs drift from its training data (ServingInsights/Drift), refreshing.")

    @Option(name: .long, help: "The model.")
    var model: String

    @Option(name: .long, help: "One version (default: every ready version with a monitor).")
    var version: String = ""

    @Option(name: .long, help: "Seconds between refreshes.")
    var interval: Double = 2

    @Option(name: .long, help: "Stop after this many refreshes (default: until interrupted).")
    var count: Int?

    @Flag(name: .long, help: "Print each refresh below the last instead of redrawing the screen (the default when the output is not a terminal).")
    var noRedraw = false

    @OptionGroup var connection: ClientConnectionOptions

    func validate() throws {
        try validateModelNameArgument(model)
        guard interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval must be within 0.1...3600 seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        let redraw = !noRedraw && isatty(STDOUT_FILENO) == 1
        try await connection.withClient { client in
            var shown = 0
            while count.map({ shown < $0 }) ?? true {
                if shown > 0 { try await Task.sleep(for: .milliseconds(Int(interval * 1000))) }
                let versions = try await client.drift(name: model, version: version, timeout: .milliseconds(Int(connection.timeout * 1000)))
                let text = versions.map { MonitorView.render($0, nowMs: UInt64(Date().timeIntervalSince1970 * 1000), color: redraw) }
                    .joined(separator: "\n")
                printUnbuffered((redraw ? "\u{1B}[H\u{1B}[2J" : (shown > 0 ? "\n" : "")) + text)
                shown += 1
            }
        }
    }
}

/// The text `swerve monitor` shows for one version.
enum MonitorView {
    static let barWidth = 20

    static func render(_ v: VersionDrift, nowMs: UInt64, color: Bool) -> String {
        var lines: [String] = []
        let open = v.windows.last
        let closed = v.windows.dropLast()
        lines.append("\(v.name) version \(v.version) · windows of \(v.windowSeconds) s · sampling \(percent(v.sampleRate)) of requests · "
                     + "\(v.samplesObserved) requests observed, \(v.samplesDropped) dropped · PSI threshold \(fixed(v.psiThreshold, 2))")
        if !v.unmapped.isEmpty { lines.append("not watched (not found in the inputs): \(v.unmapped.joined(separator: ", "))") }
        // The window the table shows: the newest closed one with enough rows, else the open one.
        let shownIndex = v.windows.indices.last { $0 < v.windows.count - 1 && v.windows[$0].rows >= v.minSamples }
            ?? (v.windows.count - 1)
        let shown = v.windows.indices.contains(shownIndex) ? v.windows[shownIndex] : nil
        let windowLine = closed.suffix(8).map { w in
            "\(clock(w.startMs)) \(w.rows)\(w.drifted > 0 ? " ⚠\(w.drifted)" : "")"
        } + (open.map { ["now \($0.rows)"] } ?? [])
        lines.append("windows: " + windowLine.joined(separator: " │ "))
        if let shown {
            let age = nowMs > shown.startMs ? (nowMs - shown.startMs) / 1000 : 0
            lines.append("table: the window from \(clock(shown.startMs))\(shown.endMs == 0 ? " (open, \(age) s so far)" : " to \(clock(shown.endMs))"), \(shown.rows) rows"
                         + (shown.rows < v.minSamples ? " — fewer than \(v.minSamples): no drift figures yet" : ""))
        }
        lines.append("")
        let nameWidth = max(7, min(24, v.features.map(\.name.count).max() ?? 7))
        lines.append(pad("feature", nameWidth) + "  kind  " + lpad("ref mean", 10) + lpad("mean", 10) + lpad("missing", 8) + lpad("OOV", 7)
                     + lpad("PSI", 8) + lpad("KS p", 8) + "  " + pad("PSI (threshold at |)", barWidth + 1) + "  history")
        for f in v.features {
            guard f.windows.indices.contains(shownIndex) else { continue }
            let w = f.windows[shownIndex]
            let seen = w.count + w.missing
            let oov = f.kind == "categorical" && w.count > 0 ? percent(Double(w.binCounts.last ?? 0) / Double(w.count)) : "-"
            let drifted = w.psi > v.psiThreshold
            var row = pad(String(f.name.prefix(nameWidth)), nameWidth) + "  " + pad(f.kind == "numeric" ? "num" : "cat", 4)
            row += lpad(f.kind == "numeric" ? short(f.referenceMean) : "-", 10) + lpad(f.kind == "numeric" ? short(w.mean) : "-", 10)
            row += lpad(seen > 0 ? percent(Double(w.missing) / Double(seen)) : "-", 8) + lpad(oov, 7)
            row += lpad(w.psi.isNaN ? "-" : fixed(w.psi, 3), 8) + lpad(w.ksPValue.isNaN ? "-" : fixed(w.ksPValue, 4), 8)
            let bar = self.bar(w.psi, threshold: v.psiThreshold)
            row += "  " + (color && drifted ? "\u{1B}[31m\(bar)\u{1B}[0m" : bar)
            row += "  " + sparkline(f.windows.map(\.psi), threshold: v.psiThreshold) + (drifted ? "  ⚠ drift" : "")
            lines.append(row)
        }
        for o in v.outputs {
            guard o.windows.indices.contains(shownIndex) else { continue }
            let w = o.windows[shownIndex]
            var parts: [String] = []
            let total = w.classCounts.reduce(0, +)
            if total > 0 {
                parts.append("classes " + zip(w.classes, w.classCounts).map { "\($0): \(percent(Double($1) / Double(total)))" }.joined(separator: ", "))
            }
            if w.scoreCount > 0, w.scoreQuantiles.count == v.quantileLevels.count {
                parts.append("score mean \(short(w.scoreMean)), "
                             + zip(v.quantileLevels, w.scoreQuantiles).map { "p\(Int(($0 * 100).rounded())) \(short($1))" }.joined(separator: " "))
            }
            lines.append("output \(o.name) (\(o.kind.isEmpty ? "no rows yet" : o.kind)): " + (parts.isEmpty ? "-" : parts.joined(separator: "; ")))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// PSI as a bar over 0 ... 2×threshold, the threshold marked with `|` at the middle.
    static func bar(_ psi: Double, threshold: Double) -> String {
        let half = barWidth / 2
        guard psi.isFinite else { return String(repeating: " ", count: half) + "|" + String(repeating: " ", count: barWidth - half) }
        let eighths = Int((min(max(psi, 0), 2 * threshold) / (2 * threshold) * Double(barWidth * 8)).rounded())
        var cells: [String] = []
        for i in 0..<barWidth {
            let fill = min(8, max(0, eighths - i * 8))
            cells.append(fill == 0 ? " " : String(["▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"][fill - 1]))
        }
        cells.insert(psi > 2 * threshold ? "▶" : "|", at: half)
        return cells.joined()
    }

    /// One character per window, its height the window's PSI over 0 ... 2×threshold.
    static func sparkline(_ values: [Double], threshold: Double) -> String {
        let ticks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        return String(values.map { v -> Character in
            guard v.isFinite else { return "·" }
            let i = Int((min(max(v, 0), 2 * threshold) / (2 * threshold) * 7).rounded())
            return ticks[i]
        })
    }

    static func clock(_ ms: UInt64) -> String {
        let seconds = Int(ms / 1000) % 86_400
        return String(format: "%02d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
    }

    static func percent(_ x: Double) -> String { x.isFinite ? String(format: "%.1f%%", x * 100) : "-" }
    static func fixed(_ x: Double, _ digits: Int) -> String { x.isFinite ? String(format: "%.\(digits)f", x) : "-" }
    static func short(_ x: Double) -> String { x.isFinite ? String(format: "%.4g", x) : "-" }
    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    static func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }
}
