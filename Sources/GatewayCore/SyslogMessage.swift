/// One syslog message, whichever RFC it came in. RFC 3164 messages leave `version`, `procID`,
/// `msgID` and `structuredData` empty; a field the sender left out (RFC 5424's `-`) is nil.
public struct SyslogMessage: Sendable, Equatable {
    public enum Format: String, Sendable { case rfc5424, rfc3164 }

    /// One SD-ELEMENT: `[exampleSDID@32473 iut="3" eventSource="App"]`.
    public struct StructuredDataElement: Sendable, Equatable {
        public var id: String
        public var parameters: [(name: String, value: String)]

        public init(id: String, parameters: [(name: String, value: String)]) {
            self.id = id
            self.parameters = parameters
        }

        public static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.id == rhs.id && lhs.parameters.elementsEqual(rhs.parameters) { $0 == $1 }
        }
    }

    public var format: Format
    /// 0–23 (`kern` to `local7`).
    public var facility: Int
    /// 0–7 (`emerg` to `debug`).
    public var severity: Int
    public var timestamp: String?
    public var hostname: String?
    public var appName: String?
    public var procID: String?
    public var msgID: String?
    public var structuredData: [StructuredDataElement]
    public var message: String

    public init(
        format: Format, facility: Int, severity: Int, timestamp: String? = nil, hostname: String? = nil, appName: String? = nil,
        procID: String? = nil, msgID: String? = nil, structuredData: [StructuredDataElement] = [], message: String
    ) {
        precondition((0...23).contains(facility) && (0...7).contains(severity), "a PRI holds facility 0-23 and severity 0-7")
        self.format = format
        self.facility = facility
        self.severity = severity
        self.timestamp = timestamp
        self.hostname = hostname
        self.appName = appName
        self.procID = procID
        self.msgID = msgID
        self.structuredData = structuredData
        self.message = message
    }

    /// RFC 5424's keywords, which rules and summaries use: `local0`, `err`.
    public static let facilityNames = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "security",
        "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ]
    public static let severityNames = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]

    /// PagerDuty's severity for a syslog severity, when a rule sets none: what pages a person
    /// (`crit` and worse) stays critical, and `notice` and below are information.
    public static func pagerDutySeverity(_ severity: Int) -> String {
        switch severity {
        case 0...2: "critical"
        case 3: "error"
        case 4: "warning"
        default: "info"
        }
    }

    public var facilityName: String { Self.facilityNames[facility] }
    public var severityName: String { Self.severityNames[severity] }
}

extension SyslogMessage {
    /// The message as flat fields for the rules. `sender` is the address it came from.
    public func fields(sender: String) -> [String: String] {
        var fields: [String: String] = [
            "facility": facilityName, "facility_code": String(facility), "severity": severityName, "severity_code": String(severity),
            "pagerduty_severity": Self.pagerDutySeverity(severity), "message": message, "format": format.rawValue, "sender": sender,
        ]
        fields["hostname"] = hostname
        fields["app"] = appName
        fields["procid"] = procID
        fields["msgid"] = msgID
        fields["timestamp"] = timestamp
        // `sd.ID.NAME`, as rsyslog's property names spell structured data.
        for element in structuredData {
            for parameter in element.parameters { fields["sd.\(element.id).\(parameter.name)"] = parameter.value }
        }
        return fields
    }
}
