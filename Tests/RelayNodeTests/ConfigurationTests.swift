import Foundation
import GatewayCore
import RelayCore
import RelayTestSupport
import Testing

@testable import RelayNode

@Suite struct ConfigurationTests {
    func write(_ text: String, mode: Int) throws -> String {
        let path = TestSupport.temporaryDirectory("config") + "/pdrelay.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func defaultsAreASafeSingleNode() throws {
        let configuration = try RelayConfiguration.load(file: nil, environment: [:])
        #expect(configuration.listenHost == "127.0.0.1")
        #expect(configuration.listenPort == 8081)
        #expect(configuration.upstreamURL == "https://events.pagerduty.com")
    }

    @Test func theEnvironmentOverridesTheFileWhichOverridesTheDefaults() throws {
        let path = try write(
            "listen_port: 9000\nupstream_url: https://events.eu.pagerduty.com\nmax_queued_events: 1_000\nqueue_high_water_events: 900\n",
            mode: 0o644)
        let configuration = try RelayConfiguration.load(
            file: path, environment: ["PDRELAY_LISTEN_PORT": "9100", "HTTPS_PROXY": "http://proxy:3128"])
        #expect(configuration.listenPort == 9100)
        #expect(configuration.upstreamURL == "https://events.eu.pagerduty.com")
        #expect(configuration.queue.maxQueuedEvents == 1_000)
        #expect(configuration.httpsProxy == "http://proxy:3128")
    }

    @Test func aSecretInAFileOthersCanReadIsRefusedWithTheFix() throws {
        let path = try write("admin_token: correct-horse-battery-staple\n", mode: 0o644)
        let error = message { _ = try RelayConfiguration.load(file: path, environment: [:]) }
        #expect(error.contains("holds secrets (admin_token)"))
        #expect(error.contains("mode is 644"))
        #expect(error.contains("chmod 600 \(path)"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        #expect(try RelayConfiguration.load(file: path, environment: [:]).adminToken == "correct-horse-battery-staple")
    }

    @Test(arguments: [
        ("listen_prot: 9000\n", "unknown setting 'listen_prot'"),
        ("listen_port: many\n", "setting 'listen_port' in config file"),
        ("- a\n- b\n", "must be a mapping"),
        (
            "max_queued_events: 10\nmax_dedup_keys: 5\nqueue_high_water_events: 5\n",
            "max_dedup_keys (5) must be larger than max_queued_events (10)"
        ),
        (
            "retry_initial_backoff_milliseconds: 5000\nretry_max_backoff_milliseconds: 100\n",
            "retry_max_backoff_milliseconds must be at least"
        ),
        ("upstream_url: ftp://example.com\n", "upstream_url must be an http:// or https:// URL"),
        ("listen_host: 0.0.0.0\n", "set admin_token"),
        ("queue_high_water_events: 200000\n", "queue_high_water_events must be between 1 and max_queued_events"),
        ("dedup_key_templates:\n  \"*\": \"{host}\"\n", "names '{host}'; use {class}, {component}"),
        ("dedup_key_templates: \"{source}\"\n", "setting 'dedup_key_templates' in config file"),
    ])
    func unsafeOrUnknownSettingsAreRefusedWithAReason(_ yaml: String, _ expected: String) throws {
        let path = try write(yaml, mode: 0o600)
        let error = message { _ = try RelayConfiguration.load(file: path, environment: [:]) }
        #expect(error.contains(expected), "got: \(error)")
    }

    @Test func theStartupSummaryNeverShowsSecrets() {
        var configuration = RelayConfiguration()
        configuration.adminToken = "correct-horse-battery-staple"
        configuration.httpsProxy = "http://user:secret@proxy:3128"
        #expect(!configuration.summary.contains("correct-horse"))
        #expect(!configuration.summary.contains("secret@"))
        #expect(configuration.summary.contains("admin_token=****"))
    }

    @Test func dedupKeyTemplatesComeFromAYAMLMappingOrAJSONVariableAndShowMasked() throws {
        let routingKey = TestSupport.routingKey()
        let path = try write("dedup_key_templates:\n  \"*\": \"{source}/{class}\"\n  \(routingKey): \"{group}\"\n", mode: 0o600)
        let fromFile = try RelayConfiguration.load(file: path, environment: [:])
        #expect(fromFile.dedupKeyTemplateTexts == ["*": "{source}/{class}", routingKey: "{group}"])
        #expect(!fromFile.summary.contains(routingKey), "routing keys are credentials")
        #expect(fromFile.summary.contains(RoutingKeyMask.mask(routingKey)))
        let fromEnvironment = try RelayConfiguration.load(
            file: path, environment: ["PDRELAY_DEDUP_KEY_TEMPLATES": #"{"*": "{source}"}"#])
        #expect(fromEnvironment.dedupKeyTemplateTexts == ["*": "{source}"])
        let error = message {
            _ = try RelayConfiguration.load(file: nil, environment: ["PDRELAY_DEDUP_KEY_TEMPLATES": "{source}"])
        }
        #expect(error.contains("setting 'dedup_key_templates' in PDRELAY_DEDUP_KEY_TEMPLATES has an invalid value"), "got: \(error)")
    }

    @Test func deliveryBudgetsComeFromADefaultAndPerRoutingKeyEntries() throws {
        let routingKey = TestSupport.routingKey()
        let path = try write("delivery_budget_per_minute: 60\ndelivery_budgets:\n  \(routingKey): 600\n", mode: 0o600)
        let configuration = try RelayConfiguration.load(file: path, environment: [:])
        #expect(try configuration.deliveryBudget == .init(defaultEventsPerMinute: 60, eventsPerMinuteByRoutingKey: [routingKey: 600]))
        #expect(!configuration.summary.contains(routingKey), "routing keys are credentials")
        let off = try RelayConfiguration.load(file: nil, environment: ["PDRELAY_DELIVERY_BUDGET_PER_MINUTE": "0"])
        #expect(try off.deliveryBudget == .unlimited)
        for (environment, expected) in [
            (["PDRELAY_DELIVERY_BUDGET_PER_MINUTE": "20000"], "delivery_budget_per_minute must be between 1 and 10000"),
            (["PDRELAY_DELIVERY_BUDGETS": #"{"*": "60"}"#], #"delivery_budgets cannot name "*""#),
            (["PDRELAY_DELIVERY_BUDGETS": #"{"\#(routingKey)": "lots"}"#], "must be between 1 and 10000 a minute, not 'lots'"),
        ] {
            let error = message { _ = try RelayConfiguration.load(file: nil, environment: environment) }
            #expect(error.contains(expected), "got: \(error)")
            #expect(!error.contains(routingKey), "routing keys are credentials")
        }
    }

    @Test func everySettingIsDocumented() throws {
        let documentation = try String(contentsOf: TestSupport.packageRoot.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        for setting in RelayConfiguration.settings {
            #expect(documentation.contains("| `\(setting.name)` |"), "docs/configuration.md does not document \(setting.name)")
        }
    }

    @Test func aSkewBoundAtOrPastThePeerSignatureWindowIsRefused() {
        let error = message { _ = try RelayConfiguration.load(file: nil, environment: ["PDRELAY_MAX_CLOCK_SKEW_MILLISECONDS": "60000"]) }
        #expect(error.contains("max_clock_skew_milliseconds must be 100…59999"), "\(error)")
    }

    @Test func noProxyExemptsTheUpstreamHost() throws {
        var configuration = RelayConfiguration()
        configuration.httpsProxy = "http://user:pw@proxy.internal:3128"
        #expect(try UpstreamClient.proxy(for: configuration) != nil)
        configuration.noProxy = "localhost, .pagerduty.com"
        #expect(try UpstreamClient.proxy(for: configuration) == nil)
    }
}

extension ConfigurationTests {
    @Test func gatewaysNeedRulesAndAddressesThatParse() {
        #expect(
            message { _ = try RelayConfiguration.load(file: nil, environment: ["PDRELAY_SYSLOG_UDP_ADDRESS": "0.0.0.0"]) }
                .contains("syslog_udp_address needs gateway_rules_file"))
        for (setting, value) in [
            ("PDRELAY_SNMP_TRAP_ADDRESS", "host:99999"), ("PDRELAY_LINE_TCP_ADDRESS", "127.0.0.1"),
            ("PDRELAY_SYSLOG_TCP_ADDRESS", "[::1]x"),
        ] {
            let error = message {
                _ = try RelayConfiguration.load(file: nil, environment: [setting: value, "PDRELAY_GATEWAY_RULES_FILE": "/x"])
            }
            #expect(error.contains("must be host:port"), "\(setting)=\(value): \(error)")
        }
        var configuration = RelayConfiguration()
        configuration.syslogUDPAddress = "[::1]:5514"
        configuration.snmpTrapAddress = "0.0.0.0"
        #expect(
            (try? configuration.gatewayListeners.map { "\($0.host) \($0.port) \($0.transport)" }) == ["::1 5514 udp", "0.0.0.0 162 udp"])
    }

    @Test func aRulesFileWithCommunitiesMustBeOwnerOnly() throws {
        let path = TestSupport.temporaryDirectory("rules") + "/rules.yaml"
        FileManager.default.createFile(
            atPath: path, contents: Data("snmp_traps: {communities: [secret]}\n".utf8), attributes: [.posixPermissions: 0o644])
        var configuration = RelayConfiguration()
        configuration.gatewayRulesFile = path
        #expect(message { _ = try configuration.gatewayRules() }.contains("chmod 600"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        #expect(try configuration.gatewayRules().section(.snmpTraps).communities == ["secret"])
    }
}
