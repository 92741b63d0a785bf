import Foundation
import Logging
import NIOConcurrencyHelpers
import RelayCore

/// `webhook_allowed_networks_file`, re-read when its modification time or size changes, so that
/// PagerDuty's safelist can be refreshed (say, from cron) without a restart. A file that no
/// longer reads is logged and the list before it stays: a bad edit must not open the endpoint
/// to everyone or close it to PagerDuty.
final class WebhookAllowListFile: Sendable {
    private struct State {
        var list: NetworkAllowList
        var stamp: [Int]
    }

    let path: String
    private let state: NIOLockedValueBox<State>
    private let logger: Logger

    init(path: String, logger: Logger) throws(ConfigurationError) {
        self.path = path
        self.logger = logger
        let (list, stamp) = try Self.read(path)
        state = NIOLockedValueBox(State(list: list, stamp: stamp))
    }

    /// The current list, re-read first if the file changed.
    func current() -> NetworkAllowList {
        let stamp = Self.stamp(path)
        if let list = state.withLockedValue({ $0.stamp == stamp ? $0.list : nil }) { return list }
        do {
            let (list, newStamp) = try Self.read(path)
            state.withLockedValue { $0 = State(list: list, stamp: newStamp) }
            logger.notice("webhook allowed networks reloaded", metadata: ["file": "\(path)", "networks": "\(list.networks.count)"])
            return list
        } catch {
            logger.error("webhook allowed networks not reloaded; the previous list stays", metadata: ["reason": "\(error)"])
            return state.withLockedValue { state in
                state.stamp = stamp  // Once per change of the file, not once per webhook.
                return state.list
            }
        }
    }

    private static func read(_ path: String) throws(ConfigurationError) -> (NetworkAllowList, [Int]) {
        let stamp = stamp(path)
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError("cannot read webhook_allowed_networks_file \(path): \(error.localizedDescription)")
        }
        return (try NetworkAllowList(text: text, source: path), stamp)
    }

    private static func stamp(_ path: String) -> [Int] {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return [] }
        let modified = (attributes[.modificationDate] as? Date).map { Int($0.timeIntervalSince1970 * 1_000_000) } ?? 0
        return [modified, (attributes[.size] as? Int) ?? 0, (attributes[.systemFileNumber] as? Int) ?? 0]
    }
}
