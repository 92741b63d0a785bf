import Foundation

/// A maintenance window as `/v1/maintenance-windows` and `pdrelay maintenance list` show it.
public struct MaintenanceWindowView: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case scheduled, active, ended
    }

    public var id: UInt64
    public var state: State
    /// RFC 3339, UTC.
    public var start: String
    public var end: String
    public var startsAtMilliseconds: Int64
    public var endsAtMilliseconds: Int64
    /// Masked, like every routing key the relay shows.
    public var routingKeys: [String]
    public var sourcePattern: String?
    public var reason: String
    public var hold: Bool
    /// Events it kept from PagerDuty so far, and those it holds now.
    public var suppressed: Int
    public var held: Int
    public var holding: Int

    public init(_ window: MaintenanceWindow, holding: Int, atMilliseconds now: Int64) {
        id = window.id
        state = window.hasEnded(atMilliseconds: now) ? .ended : window.isActive(atMilliseconds: now) ? .active : .scheduled
        start = Self.rfc3339(window.spec.startsAtMilliseconds)
        end = Self.rfc3339(window.spec.endsAtMilliseconds)
        startsAtMilliseconds = window.spec.startsAtMilliseconds
        endsAtMilliseconds = window.spec.endsAtMilliseconds
        routingKeys = window.spec.routingKeys.map(RoutingKeyMask.mask)
        sourcePattern = window.spec.sourcePattern
        reason = window.spec.reason
        hold = window.spec.hold
        suppressed = window.suppressedCount
        held = window.heldCount
        self.holding = holding
    }

    public static func rfc3339(_ milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1_000))
    }

    /// RFC 3339 with or without fractional seconds; nil if it is neither.
    public static func milliseconds(rfc3339 text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return Int64((date.timeIntervalSince1970 * 1_000).rounded()) }
        }
        return nil
    }
}

/// `GET /v1/maintenance-windows`.
public struct MaintenanceWindowList: Codable, Sendable, Equatable {
    public var windows: [MaintenanceWindowView]
    public init(windows: [MaintenanceWindowView]) { self.windows = windows }
}

/// `DELETE /v1/maintenance-windows/{id}`: the window, ended, and how many held events it released.
public struct MaintenanceWindowEnded: Codable, Sendable, Equatable {
    public var window: MaintenanceWindowView
    public var released: Int
    public init(window: MaintenanceWindowView, released: Int) {
        self.window = window
        self.released = released
    }
}
