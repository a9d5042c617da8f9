import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `swerve bench --report out.html`: one self-contained page (inline SVG and CSS, no script, no
/// network) with the run's pictures: latency against throughput, the percentile spectrum of each
/// run on a log scale (as HdrHistogram's plotter draws it), and a per-second timeline of rate, p99
/// and errors across every run in the order they ran.
enum BenchHTML {
    struct Point {
        var x: Double
        var y: Double
        var label: String
    }

    struct Series {
        var name: String
        var points: [Point]
        var line = true
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

    /// The runs in the order they ran, each with its name (a step, or a target's round).
    static func page(title: String, subtitle: String, runs: [(name: String, group: String, report: BenchRunReport)], table: String) -> String {
        var plots: [String] = []
        // Latency against throughput: per group (a target, or the whole sweep), p50 and p99.
        let groups = runs.map(\.group).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        var curve: [Series] = []
        for g in groups {
            let rs = runs.filter { $0.group == g }.sorted { $0.report.throughputRps < $1.report.throughputRps }
            for (name, f) in [("p50", { (r: BenchRunReport) in r.latencyMicros.p50 }), ("p99", { $0.latencyMicros.p99 }), ("p99.9", { $0.latencyMicros.p999 })] {
                curve.append(Series(name: groups.count > 1 ? "\(g) \(name)" : name, points: rs.map {
                    Point(x: $0.report.throughputRps, y: Double(f($0.report)) / 1000, label: "\($0.name): \(fixed($0.report.throughputRps, 1)) req/s, \(name) \(fixed(Double(f($0.report)) / 1000, 3)) ms")
                }))
            }
        }
        plots.append(plot(title: "Latency against throughput", xLabel: "throughput (req/s)", yLabel: "latency (ms)", series: curve, yLog: true))
        // Percentile spectrum per run.
        let spectrum = runs.map { run in
            Series(name: run.name, points: run.report.percentiles.filter { $0.percentile < 100 && $0.count > 0 }.map { p in
                let x = 1 / (1 - p.percentile / 100)
                return Point(x: x, y: max(0.001, Double(p.valueMicros) / 1000), label: "\(run.name): p\(fixed(p.percentile, 3)) \(fixed(Double(p.valueMicros) / 1000, 3)) ms")
            })
        }
        plots.append(plot(title: "Percentile spectrum", xLabel: "percentile (1/(1−p): 10 = p90, 100 = p99, 1000 = p99.9)", yLabel: "latency (ms)",
                          series: spectrum, xLog: true, yLog: true))
        // Timeline across every run, by wall clock.
        let origin = runs.compactMap { $0.report.startedMs }.min() ?? 0
        func timeline(_ value: (ProgressPoint) -> Double?, _ unit: String) -> [Series] {
            runs.map { run in
                let base = Double((run.report.startedMs ?? origin) - origin) / 1000
                return Series(name: run.name, points: run.report.timeline.compactMap { p in
                    value(p).map { Point(x: base + p.elapsedSeconds, y: $0, label: "\(run.name) at \(fixed(base + p.elapsedSeconds, 1)) s: \(fixed($0, 2)) \(unit)") }
                })
            }
        }
        plots.append(plot(title: "Rate per second", xLabel: "time (s)", yLabel: "req/s", series: timeline({ $0.rps }, "req/s")))
        plots.append(plot(title: "p99 per second", xLabel: "time (s)", yLabel: "p99 (ms)", series: timeline({ $0.p99Micros.map { $0 / 1000 } }, "ms")))
        plots.append(plot(title: "Errors per second", xLabel: "time (s)", yLabel: "errors", series: timeline({ $0.errorsInSecond.map(Double.init) }, "errors")))
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
            h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
            table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
            th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
            svg { background: #fff; border: 1px solid #ddd; margin: 8px 0; }
            .axis { stroke: #444; stroke-width: 1; } .grid { stroke: #eee; stroke-width: 1; }
            .tick { font-size: 11px; fill: #444; } .label { font-size: 12px; fill: #222; } .title { font-size: 14px; font-weight: 600; }
            .legend { font-size: 12px; }
            </style></head><body>
            <h1>\(escape(title))</h1>
            <p>\(escape(subtitle))</p>
            \(table)
            \(plots.joined(separator: "\n"))
            </body></html>

            """
    }

    /// A Markdown-ish table of runs as HTML.
    static func table(_ runs: [(name: String, group: String, report: BenchRunReport)]) -> String {
        var rows = "<table><tr><th>run</th><th>req/s</th><th>p50 µs</th><th>p90 µs</th><th>p99 µs</th><th>p99.9 µs</th><th>max µs</th><th>errors</th><th>server queue µs</th><th>server compute µs</th></tr>"
        for r in runs {
            let l = r.report.latencyMicros, s = r.report.serverSide
            rows += "<tr><td>\(escape(r.name))</td><td>\(fixed(r.report.throughputRps, 1))</td><td>\(l.p50)</td><td>\(l.p90)</td><td>\(l.p99)</td><td>\(l.p999)</td><td>\(l.max)</td><td>\(r.report.errors + r.report.dropped)</td>"
                + "<td>\(s.map { fixed($0.queueMicros, 1) } ?? "–")</td><td>\(s.map { fixed($0.computeInputMicros + $0.computeInferMicros + $0.computeOutputMicros, 1) } ?? "–")</td></tr>"
        }
        return rows + "</table>"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// One plot as inline SVG: axes with ticks, a line and a point (with a tooltip) per datum.
    static func plot(title: String, xLabel: String, yLabel: String, series: [Series], xLog: Bool = false, yLog: Bool = false,
                     width: Double = 960, height: Double = 360) -> String {
        let left = 70.0, right = 180.0, top = 30.0, bottom = 45.0
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite && (!xLog || $0.x > 0) && (!yLog || $0.y > 0) }
        let id = title.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }
        var svg = "<h2>\(escape(title))</h2>\n<svg class=\"plot\" id=\"\(String(id))\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        svg += "<text class=\"title\" x=\"\(left)\" y=\"18\">\(escape(title))</text>"
        guard !all.isEmpty else { return svg + "<text class=\"label\" x=\"\(left)\" y=\"\(height / 2)\">no data</text></svg>" }
        func range(_ v: [Double], log: Bool) -> (Double, Double) {
            var lo = v.min()!, hi = v.max()!
            if log { lo = pow(10, floor(log10(lo))); hi = pow(10, ceil(log10(hi))); if lo == hi { hi = lo * 10 } }
            else { lo = min(0, lo); if hi <= lo { hi = lo + 1 }; hi *= 1.05 }
            return (lo, hi)
        }
        let (x0, x1) = range(all.map(\.x), log: xLog), (y0, y1) = range(all.map(\.y), log: yLog)
        let pw = width - left - right, ph = height - top - bottom
        func sx(_ x: Double) -> Double { left + (xLog ? (log10(x) - log10(x0)) / (log10(x1) - log10(x0)) : (x - x0) / (x1 - x0)) * pw }
        func sy(_ y: Double) -> Double { top + ph - (yLog ? (log10(y) - log10(y0)) / (log10(y1) - log10(y0)) : (y - y0) / (y1 - y0)) * ph }
        func ticks(_ lo: Double, _ hi: Double, log: Bool) -> [Double] {
            if log {
                var t: [Double] = []
                var d = lo
                while d <= hi * 1.0001 { t.append(d); d *= 10 }
                return t
            }
            let raw = (hi - lo) / 6, mag = pow(10, floor(log10(raw)))
            let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
            return stride(from: (lo / step).rounded(.up) * step, through: hi, by: step).map { $0 }
        }
        func label(_ v: Double) -> String {
            if v == 0 { return "0" }
            if abs(v) >= 10000 || abs(v) < 0.01 { return String(format: "%.0e", v) }
            return v == v.rounded() ? String(Int64(v)) : String(format: "%.3g", v)
        }
        for t in ticks(x0, x1, log: xLog) {
            let x = sx(t)
            svg += "<line class=\"grid\" x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(top + ph)\"/><text class=\"tick\" x=\"\(x)\" y=\"\(top + ph + 15)\" text-anchor=\"middle\">\(label(t))</text>"
        }
        for t in ticks(y0, y1, log: yLog) {
            let y = sy(t)
            svg += "<line class=\"grid\" x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + pw)\" y2=\"\(y)\"/><text class=\"tick\" x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(label(t))</text>"
        }
        svg += "<line class=\"axis\" x1=\"\(left)\" y1=\"\(top + ph)\" x2=\"\(left + pw)\" y2=\"\(top + ph)\"/><line class=\"axis\" x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + ph)\"/>"
        svg += "<text class=\"label\" x=\"\(left + pw / 2)\" y=\"\(height - 8)\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        svg += "<text class=\"label\" transform=\"translate(16 \(top + ph / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>"
        for (k, s) in series.enumerated() {
            let color = palette[k % palette.count]
            let pts = s.points.filter { $0.x.isFinite && $0.y.isFinite && (!xLog || $0.x > 0) && (!yLog || $0.y > 0) }
            if s.line && pts.count > 1 {
                svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(pts.map { "\(sx($0.x)),\(sy($0.y))" }.joined(separator: " "))\"/>"
            }
            for p in pts {
                svg += "<circle class=\"pt\" data-series=\"\(escape(s.name))\" cx=\"\(sx(p.x))\" cy=\"\(sy(p.y))\" r=\"2.5\" fill=\"\(color)\"><title>\(escape(p.label))</title></circle>"
            }
            let ly = top + 12 + Double(k) * 16
            if ly < top + ph {
                svg += "<rect x=\"\(left + pw + 12)\" y=\"\(ly - 8)\" width=\"10\" height=\"10\" fill=\"\(color)\"/><text class=\"legend\" x=\"\(left + pw + 28)\" y=\"\(ly + 1)\">\(escape(s.name))</text>"
            }
        }
        return svg + "</svg>"
    }
}
