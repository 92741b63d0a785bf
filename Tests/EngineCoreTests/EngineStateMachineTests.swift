import ClusterCore
import EngineCore
import RelayCore
import RelayReplication
import Testing

/// The engine's decisions, input by input: what it asks to write, send and answer, and when.
/// These pin the rules the simulator's invariants check across thousands of schedules.
@Suite struct EngineStateMachineTests {
    static let timing = ClusterTiming(
        heartbeatIntervalMilliseconds: 50, minimumElectionTimeoutMilliseconds: 500, maxClockDrift: 0.01, upstreamTimeoutMilliseconds: 300,
        deliveryMarginMilliseconds: 20)

    static func settings(budget: DeliveryBudget.Policy = .unlimited) -> EngineSettings {
        EngineSettings(
            timing: timing, commitTimeoutMilliseconds: 1_000, maxCommitBatchEvents: 16, deliveryConcurrency: 4,
            retry: RetryPolicy(initialBackoffMilliseconds: 10, maxBackoffMilliseconds: 100, maxAttempts: 3), deliveryBudget: budget,
            readinessMaxLagEntries: 100,
            freezeThresholdMilliseconds: 1_000, afterFreezeGraceMilliseconds: 200, snapshotThresholdEntries: 1_000)
    }

    static func engine(id: NodeID = 1, members: [NodeID] = [1], budget: DeliveryBudget.Policy = .unlimited) -> EngineStateMachine {
        let raft = RaftNode(
            id: id, members: members, timing: timing, initialMachine: RelayStateMachine(limits: .init()), durable: nil, seed: 7, now: 0,
            snapshotThresholdEntries: 1_000)
        return EngineStateMachine(raft: raft, settings: settings(budget: budget), recovering: false, awaitingDiskDecision: false)
    }

    static func accept(_ dedupKey: String, at now: Int64 = 0, action: String = "resolve") -> RelayCommand {
        let body = Array(
            #"{"routing_key":"engineroutingkey0000000000000001","event_action":"\#(action)","dedup_key":"\#(dedupKey)"}"#.utf8)
        let event = try! EventValidator.validate(body: body, api: .v2Alert).get()
        return .accept(Acceptance(event, assignedKey: "unused", receivedAtMilliseconds: now))
    }

    /// Ticks a single node until it leads, completing each write it asks for.
    static func leader(budget: DeliveryBudget.Policy = .unlimited) -> (EngineStateMachine, now: Int64) {
        var engine = engine(budget: budget)
        var now: Int64 = 0
        while engine.raft.role != .leader {
            now += 10
            precondition(now < 10_000, "no leader")
            var actions = engine.tick(now: now)
            while actions.contains { $0.isWrite } { actions = engine.writeCompleted(now: now) }
        }
        return (engine, now)
    }

    @Test func aClientHearsBackOnlyAfterItsEntryIsWrittenAndApplied() {
        var (engine, now) = Self.leader()
        let submitted = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        #expect(submitted.contains { $0.isWrite })
        #expect(!submitted.contains { $0.isAnswer })
        now += 1
        let written = engine.writeCompleted(now: now)
        let answers = written.compactMap(\.answer)
        #expect(answers.count == 1)
        #expect(answers.first?.0 == 1)
        guard case .success(.accepted(let key, _))? = answers.first?.1 else {
            Issue.record("expected an acceptance, got \(answers)")
            return
        }
        #expect(key == "a")
    }

    @Test func aFollowerAcknowledgesOnlyAfterItsWrite() {
        var follower = Self.engine(id: 2, members: [1, 2, 3])
        let entries = [Entry<RelayCommand>(term: 1, index: 1, command: Self.accept("a"))]
        let append = Message<RelayStateMachine>(
            from: 1, to: 2, term: 1, body: .append(prevLogIndex: 0, prevLogTerm: 0, entries: entries, leaderCommit: 0, round: 1))
        let received = follower.receive([append], now: 5)
        #expect(received.contains { $0.isWrite })
        #expect(!received.flatMap(\.sent).contains { if case .appendResponse = $0.body { true } else { false } })
        let written = follower.writeCompleted(now: 6)
        #expect(
            written.flatMap(\.sent).contains { if case .appendResponse(success: true, matchIndex: 1, _) = $0.body { true } else { false } })
    }

    /// Node 1 of three, elected with node 2's vote, every write it asked for completed.
    static func leaderOfThree() -> (EngineStateMachine, now: Int64) {
        var engine = engine(id: 1, members: [1, 2, 3])
        var now: Int64 = 0
        while engine.raft.role != .leader {
            now += 10
            precondition(now < 10_000, "no leader")
            var pending = engine.tick(now: now)
            while !pending.isEmpty {
                let action = pending.removeFirst()
                if action.isWrite { pending += engine.writeCompleted(now: now) }
                for message in action.sent {
                    switch message.body {
                    case .preVoteRequest:
                        pending += engine.receive(
                            [.init(from: 2, to: 1, term: message.term, body: .preVoteResponse(granted: true))], now: now)
                    case .voteRequest:
                        pending += engine.receive([.init(from: 2, to: 1, term: message.term, body: .voteResponse(granted: true))], now: now)
                    default: break
                    }
                }
            }
        }
        return (engine, now)
    }

    @Test func aLeadersAppendsLeaveBeforeItsOwnWrite() {
        var (engine, now) = Self.leaderOfThree()
        let submitted = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        let firstWrite = submitted.firstIndex(where: \.isWrite)
        let firstAppend = submitted.firstIndex { $0.sent.contains { $0.isBulk } }
        guard let firstWrite, let firstAppend else {
            Issue.record("expected a write and an append, got \(submitted)")
            return
        }
        #expect(firstAppend < firstWrite)
    }

    @Test func aClientHearsOnceAMajorityHoldsItsEntryWithoutWaitingForTheLeadersWrite() {
        var (engine, now) = Self.leaderOfThree()
        let submitted = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        #expect(submitted.contains { $0.isWrite })
        // Both followers sync the entry and say so; the leader's own write of it is still out.
        let acknowledgements = submitted.flatMap(\.sent).compactMap { message -> Message<RelayStateMachine>? in
            guard case .append(let prevLogIndex, _, let entries, _, let round) = message.body, !entries.isEmpty else { return nil }
            return .init(
                from: message.to, to: 1, term: message.term,
                body: .appendResponse(success: true, matchIndex: prevLogIndex + LogIndex(entries.count), round: round))
        }
        #expect(Set(acknowledgements.map(\.from)) == [2, 3], "\(submitted)")
        now += 1
        let acknowledged = engine.receive(acknowledgements, now: now)
        #expect(acknowledged.compactMap(\.answer).map(\.0) == [1], "\(acknowledged)")
        #expect(!acknowledged.contains { $0.isWrite }, "the leader's own write is still running")
    }

    @Test func aFailedWriteFailsEveryWaitingClientAndStopsWriting() {
        var (engine, now) = Self.leader()
        _ = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        // A second command waits for the first write.
        let queued = engine.submit(Self.accept("b"), request: 2, holdDeadlineMilliseconds: nil, now: now)
        #expect(!queued.contains { $0.isWrite })
        now += 1
        let failed = engine.writeFailed("disk full", now: now)
        let answers = failed.compactMap(\.answer).sorted { $0.0 < $1.0 }
        #expect(answers.map(\.0) == [1, 2])
        #expect(answers.allSatisfy { if case .failure(.storeFailed) = $0.1 { true } else { false } })
        let later = engine.submit(Self.accept("c"), request: 3, holdDeadlineMilliseconds: nil, now: now)
        #expect(!later.contains { $0.isWrite })
        #expect(later.compactMap(\.answer).first.map { if case .failure(.storeFailed) = $0.1 { true } else { false } } == true)
    }

    @Test func aCommandNotCommittedInTimeIsAnsweredOutcomeUnknown() {
        var engine = Self.engine(id: 1, members: [1, 2, 3])
        // A follower takes no commands at all.
        let refused = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: 0)
        #expect(refused.compactMap(\.answer).first.map { if case .failure(.notLeader) = $0.1 { true } else { false } } == true)
        // A lone leader whose write never completes: the tick after the commit timeout answers.
        var (leader, now) = Self.leader()
        _ = leader.submit(Self.accept("a"), request: 7, holdDeadlineMilliseconds: nil, now: now)
        let early = leader.tick(now: now + 999)
        #expect(early.compactMap(\.answer).isEmpty)
        now += 1_000
        let late = leader.tick(now: now)
        #expect(
            late.compactMap(\.answer).first.map { $0.0 == 7 && { if case .failure(.outcomeUnknown) = $0 { true } else { false } }($0.1) }
                == true)
    }

    @Test func aHeldRequestIsRefusedAsStaleRatherThanProposedLate() {
        var (engine, now) = Self.leader()
        _ = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        // Waits behind the first write; its hold runs out before that write completes.
        _ = engine.submit(Self.accept("b"), request: 2, holdDeadlineMilliseconds: now + 5, now: now)
        now += 10
        let written = engine.writeCompleted(now: now)
        let answers = Dictionary(uniqueKeysWithValues: written.compactMap(\.answer))
        #expect(answers[2].map { if case .failure(.staleRequest) = $0 { true } else { false } } == true)
    }

    @Test func theKeyWaitsForTheOutcomeToBeAppliedBeforeItsNextAttempt() {
        var (engine, now) = Self.leader()
        let submitted = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        // The delivery begins with an intent; once it is written and applied, the send starts.
        guard let order = Self.untilDelivery(&engine, submitted, now: &now) else {
            Issue.record("no delivery started")
            return
        }
        #expect(order.sendByMilliseconds == now + Self.timing.upstreamTimeoutMilliseconds)
        _ = engine.submit(Self.accept("a", at: 1), request: 2, holdDeadlineMilliseconds: nil, now: now)
        now += 1
        let finished = engine.deliveryFinished(
            eventNumber: order.event.number, response: UpstreamResponse(statusCode: 202, detail: "ok"), now: now, wallClockMilliseconds: 0,
            jitter: 0)
        // The outcome is being written: the key's next event must not start yet.
        #expect(finished.compactMap(\.order).isEmpty)
        #expect(engine.deliveriesInFlight == 1)
    }

    /// Completes writes and ticks a millisecond at a time until a delivery starts.
    static func untilDelivery(_ engine: inout EngineStateMachine, _ actions: [EngineAction], now: inout Int64) -> DeliveryOrder? {
        var actions = actions
        for _ in 0..<5_000 {
            if let order = actions.compactMap(\.order).first { return order }
            now += 1
            actions = actions.contains { $0.isWrite } ? engine.writeCompleted(now: now) : engine.tick(now: now)
        }
        return nil
    }

    /// Queues key "a"'s next event (`action`, request 2) while `first` is on its way, and once
    /// it is applied, ends `first` with a 202.
    static func finish(_ first: DeliveryOrder, behind action: String, engine: inout EngineStateMachine, now: inout Int64) -> [EngineAction]
    {
        var actions = engine.submit(Self.accept("a", at: 1, action: action), request: 2, holdDeadlineMilliseconds: nil, now: now)
        while !actions.contains(where: { $0.answer?.0 == 2 }) {
            now += 1
            actions = engine.writeCompleted(now: now)
        }
        now += 1
        return engine.deliveryFinished(
            eventNumber: first.event.number, response: UpstreamResponse(statusCode: 202, detail: "ok"), now: now, wallClockMilliseconds: 0,
            jitter: 0)
    }

    @Test func theNextEventWaitsForItsRoutingKeysSlotAndA429LengthensTheSlot() {
        var (engine, now) = Self.leader(budget: .init(defaultEventsPerMinute: 120))
        var actions = engine.submit(Self.accept("a", action: "acknowledge"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        guard let first = Self.untilDelivery(&engine, actions, now: &now) else {
            Issue.record("no delivery started")
            return
        }
        let firstStarted = now
        actions = Self.finish(first, behind: "resolve", engine: &engine, now: &now)
        guard let second = Self.untilDelivery(&engine, actions, now: &now) else {
            Issue.record("the next event never started")
            return
        }
        #expect(second.event.number == first.event.number + 1)
        #expect(now >= firstStarted + 500, "the next event went \(now - firstStarted) ms after the first, inside its slot")
        #expect(engine.deliveryBudget(for: first.event.key.routingKey, now: now)?.slotMilliseconds == 500)
        now += 1
        actions = engine.deliveryFinished(
            eventNumber: second.event.number, response: UpstreamResponse(statusCode: 429, detail: "throttled"), now: now,
            wallClockMilliseconds: 0, jitter: 0)
        #expect(engine.deliveryBudget(for: first.event.key.routingKey, now: now)?.slotMilliseconds == 1_000)
    }

    @Test func theNextEventsIntentRidesInTheOutcomesEntry() {
        var (engine, now) = Self.leader()
        var actions = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        guard let first = Self.untilDelivery(&engine, actions, now: &now) else {
            Issue.record("no delivery started")
            return
        }
        actions = Self.finish(first, behind: "acknowledge", engine: &engine, now: &now)
        // One entry carries the outcome and, behind it, the next event's intent; nothing is sent
        // before its write is done.
        var writes: [[String]] = []
        var next: DeliveryOrder?
        for _ in 0..<10 where next == nil {
            next = actions.compactMap(\.order).first
            for case .write(let steps) in actions {
                let entries = steps.flatMap { step -> [Entry<RelayCommand>] in if case .entries(let entries) = step { entries } else { [] }
                }
                writes.append(
                    entries.compactMap { entry in
                        switch entry.command {
                        case .recordAttempt(let number, _)?: "outcome \(number)"
                        case .openIntent(let intent)?: "intent \(intent.eventNumber)"
                        case .recordAttemptAndOpenIntent(let number, _, let next)?: "outcome \(number), intent \(next.eventNumber)"
                        default: nil
                        }
                    })
            }
            #expect(
                next == nil || writes.contains { $0.contains("outcome \(first.event.number), intent \(first.event.number + 1)") },
                "sent before its intent was written")
            now += 1
            if next == nil { actions = actions.contains { $0.isWrite } ? engine.writeCompleted(now: now) : engine.tick(now: now) }
        }
        #expect(next?.event.number == first.event.number + 1)
        #expect(writes.contains(["outcome \(first.event.number), intent \(first.event.number + 1)"]), "writes: \(writes)")
        #expect(engine.deliveriesInFlight == 1)
    }

    /// The commands of the log entries `actions` write, in order.
    static func written(_ actions: [EngineAction]) -> [RelayCommand] {
        actions.flatMap { action -> [RelayCommand] in
            guard case .write(let steps) = action else { return [] }
            return steps.flatMap { step -> [RelayCommand] in
                if case .entries(let entries) = step { entries.compactMap(\.command) } else { [] }
            }
        }
    }

    @Test func aNewIncidentsIntentRidesInItsAcceptanceAndItIsSentOnceThatApplies() {
        var (engine, now) = Self.leader()
        let submitted = engine.submit(Self.accept("a"), request: 1, holdDeadlineMilliseconds: nil, now: now)
        let term = engine.raft.term
        guard case .acceptAndOpenIntent(_, term)? = Self.written(submitted).first else {
            Issue.record("the acceptance went without its intent: \(Self.written(submitted))")
            return
        }
        #expect(submitted.compactMap(\.order).isEmpty, "sent before its entry was written")
        now += 1
        let applied = engine.writeCompleted(now: now)
        // The client's answer and the send come from the same write; the send is last.
        #expect(applied.compactMap(\.answer).map(\.0) == [1])
        #expect(applied.compactMap(\.order).map(\.event.number) == [1])
        #expect(
            engine.raft.machine.openIntent(for: OrderingKey(routingKey: "engineroutingkey0000000000000001", dedupKey: "a"))?.term == term)
    }

    @Test func anEventBehindAnotherOfItsKeyOrBeyondTheInFlightLimitGoesWithoutAnIntent() {
        var (engine, now) = Self.leader()
        // Four keys fill the in-flight limit (deliveryConcurrency 4); the fifth key and a second
        // event of key "a" are accepted without one.
        var commands: [RelayCommand] = []
        for (request, key) in ["a", "b", "c", "d"].enumerated() {
            commands += Self.written(
                engine.submit(Self.accept(key), request: RequestID(request + 1), holdDeadlineMilliseconds: nil, now: now))
        }
        // The first write holds "a"; "b" to "d" wait for it and go in the next.
        var started = 0
        for _ in 0..<2 {
            now += 1
            let actions = engine.writeCompleted(now: now)
            commands += Self.written(actions)
            started += actions.compactMap(\.order).count
        }
        #expect(started == 4)
        var actions = engine.submit(Self.accept("e"), request: 5, holdDeadlineMilliseconds: nil, now: now)
        actions += engine.submit(Self.accept("a", at: 1, action: "acknowledge"), request: 6, holdDeadlineMilliseconds: nil, now: now)
        commands += Self.written(actions)
        while actions.contains(where: \.isWrite) {
            now += 1
            actions = engine.writeCompleted(now: now)
            commands += Self.written(actions)
        }
        let kinds = commands.map { command -> String in
            switch command {
            case .acceptAndOpenIntent(let acceptance, _): "with intent \(acceptance.key.dedupKey)"
            case .accept(let acceptance): "plain \(acceptance.key.dedupKey)"
            default: "other"
            }
        }
        #expect(kinds == ["with intent a", "with intent b", "with intent c", "with intent d", "plain e", "plain a"], "\(kinds)")
        #expect(engine.deliveriesInFlight == 4)
    }
}

extension EngineAction {
    var isWrite: Bool { if case .write = self { true } else { false } }
    var isAnswer: Bool { if case .answer = self { true } else { false } }
    var answer: (RequestID, Result<CommandResult, EngineError>)? {
        if case .answer(let id, let result) = self { (id, result) } else { nil }
    }
    var sent: [Message<RelayStateMachine>] { if case .send(let messages) = self { messages } else { [] } }
    var order: DeliveryOrder? { if case .startDelivery(let order) = self { order } else { nil } }
}
