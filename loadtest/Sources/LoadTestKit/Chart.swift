import Foundation

/// An SVG chart of one phase: events per second (accepted, delivered, failed) above, ingest
/// latency (p50, p99, log scale) below, chaos events as dashed lines and client-visible outages
/// shaded. Plain SVG, so a browser or the file viewer shows it with nothing installed.
public struct Chart: Sendable {
    public let phase: PhaseReport

    public init(phase: PhaseReport) { self.phase = phase }

    static let width = 960.0
    static let left = 70.0
    static let right = 20.0
    static let throughputPanel = (top: 70.0, bottom: 270.0)
    static let latencyPanel = (top: 310.0, bottom: 490.0)
    static let height = 530.0

    public var svg: String {
        let seconds = phase.timeline.seconds
        let span = Double(max(seconds.count, 1))
        func x(_ second: Double) -> Double { Self.left + second / span * (Self.width - Self.left - Self.right) }
        var parts: [String] = [
            ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(Int(Self.width))" height="\##(Int(Self.height))" font-family="sans-serif" font-size="12">"##,
            ##"<rect width="100%" height="100%" fill="white"/>"##,
            ##"<text x="\##(Self.left)" y="20" font-size="15" font-weight="bold">\##(Self.escape("pdrelay load test: \(phase.name)"))</text>"##,
        ]
        for (index, line) in phase.target.components(separatedBy: " — ").enumerated() {
            parts.append(##"<text x="\##(Self.left)" y="\##(36 + 14 * index)" fill="#555">\##(Self.escape(line))</text>"##)
        }
        for window in phase.unavailability {
            let from = x(window.fromSeconds)
            parts.append(
                ##"<rect x="\##(Self.f(from))" y="\##(Self.throughputPanel.top)" width="\##(Self.f(max(1, x(window.toSeconds) - from)))" height="\##(Self.latencyPanel.bottom - Self.throughputPanel.top)" fill="#f4c7c3" opacity="0.6"/>"##
            )
        }

        let peak = max(1, seconds.map { max($0.accepted, $0.delivered, $0.failed) }.max() ?? 1)
        let ceiling = Self.niceCeiling(Double(peak))
        func yThroughput(_ value: Double) -> Double {
            Self.throughputPanel.bottom - value / ceiling * (Self.throughputPanel.bottom - Self.throughputPanel.top)
        }
        parts += Self.axis(panel: Self.throughputPanel, ticks: (0...4).map { ceiling * Double($0) / 4 }, y: yThroughput, label: "events/s")
        for (series, color, name) in [
            (seconds.map { Double($0.accepted) }, "#1f77b4", "accepted (202)"),
            (seconds.map { Double($0.delivered) }, "#2ca02c", "delivered upstream"),
            (seconds.map { Double($0.failed) }, "#d62728", "not accepted"),
        ] {
            parts.append(Self.line(series.enumerated().map { (x(Double($0.offset) + 0.5), yThroughput($0.element)) }, color: color))
            parts.append(Self.legendEntry(name: name, color: color))
        }

        let latencies = seconds.flatMap { [$0.p50Milliseconds, $0.p99Milliseconds] }.filter { $0 > 0 }
        let low = pow(10, floor(log10(max(0.01, latencies.min() ?? 1))))
        let high = pow(10, ceil(log10(max(low * 10, latencies.max() ?? 10))))
        func yLatency(_ value: Double) -> Double {
            let clamped = min(max(value, low), high)
            return Self.latencyPanel.bottom - log10(clamped / low) / log10(high / low) * (Self.latencyPanel.bottom - Self.latencyPanel.top)
        }
        let decades = stride(from: log10(low), through: log10(high), by: 1).map { pow(10, $0) }
        parts += Self.axis(panel: Self.latencyPanel, ticks: decades, y: yLatency, label: "ingest ms (log)")
        for (series, color, name) in [
            (seconds.map(\.p50Milliseconds), "#ff7f0e", "ingest p50"), (seconds.map(\.p99Milliseconds), "#9467bd", "ingest p99"),
        ] {
            let points = series.enumerated().filter { $0.element > 0 }.map { (x(Double($0.offset) + 0.5), yLatency($0.element)) }
            parts.append(Self.line(points, color: color))
            parts.append(Self.legendEntry(name: name, color: color))
        }

        for outcome in phase.chaos {
            let position = Self.f(x(outcome.atSeconds))
            parts.append(
                ##"<line x1="\##(position)" y1="\##(Self.throughputPanel.top)" x2="\##(position)" y2="\##(Self.latencyPanel.bottom)" stroke="#d62728" stroke-dasharray="4,3"/>"##
            )
            parts.append(
                ##"<text x="\##(position)" y="\##(Self.throughputPanel.top - 2)" fill="#d62728" text-anchor="middle">\##(Self.escape("\(outcome.event.split(separator: "@")[0]) node \(outcome.node)"))</text>"##
            )
        }
        let step = max(1, Int(span / 10))
        for second in stride(from: 0, through: Int(span), by: step) {
            parts.append(
                ##"<text x="\##(Self.f(x(Double(second))))" y="\##(Self.latencyPanel.bottom + 16)" text-anchor="middle">\##(second) s</text>"##
            )
        }
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }

    static func axis(panel: (top: Double, bottom: Double), ticks: [Double], y: (Double) -> Double, label: String) -> [String] {
        var parts = [
            ##"<line x1="\##(left)" y1="\##(panel.top)" x2="\##(left)" y2="\##(panel.bottom)" stroke="#333"/>"##,
            ##"<line x1="\##(left)" y1="\##(panel.bottom)" x2="\##(width - right)" y2="\##(panel.bottom)" stroke="#333"/>"##,
            ##"<text x="12" y="\##(f((panel.top + panel.bottom) / 2))" transform="rotate(-90 12 \##(f((panel.top + panel.bottom) / 2)))" text-anchor="middle">\##(label)</text>"##,
        ]
        for tick in ticks {
            let position = f(y(tick))
            parts.append(##"<line x1="\##(left)" y1="\##(position)" x2="\##(width - right)" y2="\##(position)" stroke="#eee"/>"##)
            parts.append(##"<text x="\##(left - 4)" y="\##(position)" text-anchor="end" dy="4">\##(tickLabel(tick))</text>"##)
        }
        return parts
    }

    static func line(_ points: [(Double, Double)], color: String) -> String {
        let path = points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ")
        return ##"<polyline fill="none" stroke="\##(color)" stroke-width="1.5" points="\##(path)"/>"##
    }

    static func legendEntry(name: String, color: String) -> String {
        let position = width - right - 150
        let row = legendRow(name)
        return
            ##"<g><rect x="\##(f(position))" y="\##(f(row - 9))" width="10" height="10" fill="\##(color)"/><text x="\##(f(position + 14))" y="\##(f(row))">\##(escape(name))</text></g>"##
    }

    private static func legendRow(_ name: String) -> Double {
        let order = ["accepted (202)", "delivered upstream", "not accepted", "ingest p50", "ingest p99"]
        let index = Double(order.firstIndex(of: name) ?? 0)
        return index < 3 ? throughputPanel.top + 14 + index * 15 : latencyPanel.top + 14 + (index - 3) * 15
    }

    static func niceCeiling(_ value: Double) -> Double {
        let magnitude = pow(10, floor(log10(value)))
        return ([1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= value }) ?? value
    }

    static func tickLabel(_ value: Double) -> String {
        if value >= 1_000 { return BenchReport.grouped(value) }
        if value >= 1 || value == 0 { return String(Int(value)) }
        return String(value)
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
