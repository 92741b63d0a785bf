import ArgumentParser
import ClusterCore
import ClusterSimulator
import EngineCore
import Foundation

/// Runs the cluster simulator: many seeds with a summary, or one seed with a readable trace.
@main
struct SimulatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pdrelay-sim",
        abstract: "Drive the node's engine core through seeded fault schedules and check its invariants.",
        discussion: """
            Each seed draws its own fault mix (message loss, duplication, delay, partitions, crashes with \
            lost writes, empty-disk restarts, pauses longer than the lease, a failing upstream), runs a fault \
            phase and then a healed phase, and checks the invariants of design/cluster.md after every step.
            """)

    @Option(help: "Run this many seeds, starting at --first-seed.") var seeds = 100
    @Option(help: "The first seed of a sweep.") var firstSeed: UInt64 = 1
    @Option(help: "Run only this seed, and print its trace.") var seed: UInt64?
    @Option(
        help:
            "Switch on a deliberate protocol or engine bug (debug builds only): \(FaultName.allCases.map(\.rawValue).joined(separator: ", "))."
    )
    var fault: FaultName?
    @Flag(help: "Stop the sweep at the first failing seed.") var stopAtFirstFailure = false

    func run() throws {
        var options = Simulation.Options()
        options.faults = fault?.protocolFaults ?? .none
        options.engineFaults = fault?.engineFaults ?? .none
        if let seed {
            options.trace = true
            options.onTrace = { FileHandle.standardError.write(Data("  \($0)\n".utf8)) }
            var simulation = Simulation(seed: seed, options: options)
            print("seed \(seed): \(simulation.mix)")
            let outcome = simulation.run()
            print(Self.summary(outcome))
            if outcome.violation != nil { throw ExitCode.failure }
            return
        }
        let started = ContinuousClock.now
        var failures: [Simulation.Outcome] = []
        var steps = 0
        var ran = 0
        if fault != nil && !ProtocolFaults.areAvailable {
            throw ValidationError("deliberate faults exist only in debug builds: run without -c release")
        }
        for seed in firstSeed..<(firstSeed + UInt64(seeds)) where !(stopAtFirstFailure && !failures.isEmpty) {
            var simulation = Simulation(seed: seed, options: options)
            let outcome = simulation.run()
            steps += outcome.steps
            ran += 1
            if outcome.violation != nil {
                failures.append(outcome)
                print(Self.summary(outcome))
                print("  replay: swift run pdrelay-sim --seed \(seed)\(fault.map { " --fault \($0.rawValue)" } ?? "")")
            }
        }
        let seconds =
            Double((ContinuousClock.now - started).components.seconds) + Double((ContinuousClock.now - started).components.attoseconds)
            / 1e18
        print(
            "\(ran) seeds, \(failures.count) failed, \(steps) steps in \(String(format: "%.1f", seconds)) s (\(Int(Double(steps) / max(seconds, 0.001))) steps/s)"
        )
        if !failures.isEmpty { throw ExitCode.failure }
    }

    static func summary(_ outcome: Simulation.Outcome) -> String {
        let verdict = outcome.violation.map { "FAILED: \($0)" } ?? "ok"
        return
            "seed \(outcome.seed) \(verdict) — \(outcome.steps) steps, \(outcome.acknowledged) acknowledged, \(outcome.delivered) delivered, \(outcome.leaderChanges) leaders"
    }
}

/// The deliberate bugs the simulator must catch.
enum FaultName: String, CaseIterable, ExpressibleByArgument {
    case commitBeforeMajority = "commit-before-majority"
    case skipElectionRestriction = "skip-election-restriction"
    case leaseIgnoresDrift = "lease-ignores-drift"
    case deliverWithoutLeaseCheck = "deliver-without-lease-check"
    case forgetVoteOnRestart = "forget-vote-on-restart"
    case ignoreOpenIntents = "ignore-open-intents"
    case answerBeforeApplied = "answer-before-applied"
    case releaseKeyBeforeOutcomeDurable = "release-key-before-outcome-durable"
    case acknowledgeBeforeSync = "acknowledge-before-sync"
    case countOwnUnsyncedEntry = "count-own-unsynced-entry"

    var protocolFaults: ProtocolFaults {
        switch self {
        case .commitBeforeMajority: .commitBeforeMajority
        case .skipElectionRestriction: .skipElectionRestriction
        case .leaseIgnoresDrift: .leaseIgnoresDrift
        case .deliverWithoutLeaseCheck: .deliverWithoutLeaseCheck
        case .forgetVoteOnRestart: .forgetVoteOnRestart
        case .ignoreOpenIntents: .ignoreOpenIntents
        default: .none
        }
    }

    var engineFaults: EngineFaults {
        switch self {
        case .answerBeforeApplied: .answerBeforeApplied
        case .releaseKeyBeforeOutcomeDurable: .releaseKeyBeforeOutcomeDurable
        case .acknowledgeBeforeSync: .acknowledgeBeforeSync
        case .countOwnUnsyncedEntry: .countOwnUnsyncedEntry
        default: .none
        }
    }
}
