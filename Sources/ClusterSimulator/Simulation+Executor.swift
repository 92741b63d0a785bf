import ClusterCore
import EngineCore
import RelayCore
import RelayReplication

/// The simulator's executor: it carries out each engine action as `RelayEngine` does, against a
/// simulated disk (writes take 0–2 ms, one at a time, and a crash loses the one under way), a
/// network that delays, drops, duplicates and partitions, and an upstream that is slow, throttles,
/// fails and hangs. It makes no decision of the engine's.
extension Simulation {
    /// Feeds one input to a running node's engine and carries out what it returns.
    mutating func drive(_ id: NodeID, _ input: (inout EngineStateMachine) -> [EngineAction]) {
        guard nodes[id - 1].engine != nil else { return }
        let actions = input(&nodes[id - 1].engine!)
        noteLeadership(id)
        checkCommitDurability(id)
        for action in actions { carryOut(action, on: id) }
    }

    mutating func carryOut(_ action: EngineAction, on id: NodeID) {
        let incarnation = nodes[id - 1].incarnation
        switch action {
        case .write(let steps):
            for case .entries(let entries) in steps {
                for entry in entries {
                    switch entry.command {
                    case .recordAttempt(let number, _)?:
                        noteOutcomeLogged(eventNumber: number, on: id)
                    case .openIntent(let intent)?:
                        checkOutcomeBeforeNextAttempt(
                            key: intent.key, eventNumber: intent.eventNumber, term: intent.term, isIntent: true, on: id)
                    case .recordAttemptAndOpenIntent(let number, _, let next)?:
                        noteOutcomeLogged(eventNumber: number, on: id)
                        checkOutcomeBeforeNextAttempt(key: next.key, eventNumber: next.eventNumber, term: next.term, isIntent: true, on: id)
                    default:
                        break
                    }
                }
            }
            // One write at a time, in order: the next starts when the disk is free.
            let done = max(now, nodes[id - 1].diskFreeAt) + Int64(random.next() % 3)
            nodes[id - 1].diskFreeAt = done
            schedule(at: done, .diskDone(id, incarnation: incarnation, steps: steps))
        case .send(let messages):
            for message in messages {
                checkDurableBeforeAcknowledged(message)
                if case .voteResponse(granted: true) = message.body {
                    note("node \(id) votes for \(message.to) in term \(message.term)")
                }
                send(message)
            }
        case .answer(let request, let result):
            answered(request, result, on: id)
        case .startDelivery(let order):
            checkOutcomeBeforeNextAttempt(key: order.event.key, eventNumber: order.event.number, term: order.term, isIntent: false, on: id)
            if !healed, nodes[id - 1].pausedUntil == nil, Double(random.next() % 1_000) / 1_000 < mix.pauseAfterIntentShare {
                // Frozen between the engine's decision and the first byte: the moment the
                // send deadline is for.
                schedule(at: now, .pause(id, milliseconds: timing.minimumElectionTimeoutMilliseconds * 2 + Int64(random.next() % 1_000)))
                schedule(at: now, .send(id, incarnation: incarnation, order))
            } else {
                transmit(order, from: id, incarnation: incarnation)
            }
        case .cancelDelivery:
            // The request may already be on its way; its answer will be ignored.
            break
        case .flushLater(let afterMilliseconds):
            schedule(at: realTime(id, afterLocal: afterMilliseconds), .flush(id, incarnation: incarnation))
        case .drained:
            // The process exits and is started again, from its disk.
            note("node \(id) drained")
            schedule(at: now + 1, .crash(id))
            schedule(at: now + 100 + Int64(random.next() % 1_000), .restart(id, lostDisk: false))
        case .notice(.applied(let entries)):
            for entry in entries { record(entry, on: id) }
        case .notice(.roleChanged(_, let to, let term)):
            note("node \(id) is \(to.rawValue) in term \(term)")
        case .notice:
            break
        }
    }

    /// The disk carries out one write: it is durable from here on.
    mutating func writeToDisk(_ id: NodeID, _ steps: [StoreStep]) {
        var disk = nodes[id - 1].disk ?? DurableState(hardState: HardState(term: 0, votedFor: nil), snapshot: nil, entries: [])
        for step in steps {
            switch step {
            case .hardState(let hardState): disk.hardState = hardState
            case .truncate(let after): disk.truncate(after: after)
            case .entries(let entries): disk.append(entries)
            // The simulated disk keeps the log and the leader's snapshots, and no tables: a
            // restart rebuilds the machine from them, so it compacts nothing.
            case .applied, .compact: break
            case .install(let snapshot): disk.keep(snapshot)
            case .recovering(let flag): nodes[id - 1].recoveringMarker = flag
            }
        }
        nodes[id - 1].disk = disk
    }

    /// Sometimes a node crashes, and comes straight back, right after writing a vote for another.
    mutating func crashAfterVote(_ id: NodeID, _ steps: [StoreStep]) {
        for case .hardState(let hardState) in steps {
            guard let vote = hardState.votedFor, vote != id, !healed, Double(random.next() % 1_000) / 1_000 < mix.crashAfterVoteShare
            else { continue }
            // The vote is on disk and on its way: crash and come straight back, before the
            // election is over.
            schedule(at: now, .crash(id))
            schedule(at: now + 1 + Int64(random.next() % 5), .restart(id, lostDisk: false))
            return
        }
    }

    mutating func send(_ message: Message<RelayStateMachine>) {
        guard !blocked.contains([message.from, message.to]) else { return }
        if Double(random.next() % 1_000) / 1_000 < mix.dropProbability, !healed { return }
        let copies = !healed && Double(random.next() % 1_000) / 1_000 < mix.duplicateProbability ? 2 : 1
        for _ in 0..<copies {
            schedule(at: now + 1 + Int64(random.next() % UInt64(mix.maxNetworkDelayMilliseconds)), .message(message))
        }
    }

    /// A client hears back.
    mutating func answered(_ request: RequestID, _ result: Result<CommandResult, EngineError>, on id: NodeID) {
        guard let (index, acceptance) = nodes[id - 1].requests.removeValue(forKey: request) else {
            preconditionFailure("node \(id) answered request \(request), which it was not given or answered before")
        }
        guard case .success(let outcome) = result else { return }
        let queued: UInt64?
        switch outcome {
        case .accepted(_, let number), .duplicate(_, let number), .coalesced(_, let number): queued = number
        // Recorded in its folder and not queued: acknowledged, with nothing to deliver.
        case .repeatSuppressed, .suppressedByMaintenance, .held, .digested: queued = nil
        default: return
        }
        if !appliedAcceptances.contains(acceptance) {
            violation = "answer after apply: node \(id) acknowledged request \(index) before its entry was applied"
            return
        }
        requests[index].acknowledged = true
        if let queued { acknowledgedEvents.insert(queued) }
    }

    // MARK: the upstream

    /// The executor starts an upstream request: no byte of it leaves after its deadline.
    mutating func transmit(_ order: DeliveryOrder, from id: NodeID, incarnation: Int) {
        guard nodes[id - 1].incarnation == incarnation, nodes[id - 1].engine != nil else { return }
        if let until = nodes[id - 1].pausedUntil {
            schedule(at: until, .send(id, incarnation: incarnation, order))
            return
        }
        let event = order.event
        let deadlineReal = realTime(id, afterLocal: order.sendByMilliseconds - localTime(id))
        let delivery = Delivery(node: id, incarnation: incarnation, term: order.term, event: event, deadlineReal: deadlineReal)
        guard now < deadlineReal else {
            // Frozen past the deadline: the send guard stops every byte.
            schedule(at: now, .deliveryOutcome(delivery, response: Self.timedOut))
            return
        }
        newestStartedTerm[event.key] = max(newestStartedTerm[event.key] ?? 0, order.term)
        // A slow proxy or link takes long to pass the request on; past the deadline the send
        // guard has stopped it, and the upstream never sees it.
        let transit = slowDelay() ?? 1 + Int64(random.next() % 5)
        if now + transit > deadlineReal {
            schedule(at: deadlineReal, .deliveryOutcome(delivery, response: Self.timedOut))
        } else {
            schedule(at: now + transit, .upstreamArrival(delivery))
        }
    }

    static let timedOut = UpstreamResponse(statusCode: nil, detail: "timed out")

    /// A delay of up to ten leases, for the share of requests the upstream mix makes slow.
    mutating func slowDelay() -> Int64? {
        guard Double(random.next() % 10_000) / 10_000 < upstreamMix.slowShare else { return nil }
        return Int64(random.next() % UInt64(10 * timing.leaseDurationMilliseconds))
    }

    mutating func upstreamReceives(_ delivery: Delivery) {
        let roll = Double(random.next() % 10_000) / 10_000
        let mix = upstreamMix
        var threshold = mix.hangShare
        if roll < threshold {
            schedule(at: delivery.deadlineReal, .deliveryOutcome(delivery, response: Self.timedOut))
            return
        }
        threshold += mix.rejectShare
        if roll < threshold { return reply(delivery, UpstreamResponse(statusCode: 400, detail: "invalid event")) }
        threshold += mix.throttleShare
        if roll < threshold { return reply(delivery, UpstreamResponse(statusCode: 429, retryAfter: "0", detail: "throttled")) }
        threshold += mix.serverErrorShare
        if roll < threshold { return reply(delivery, UpstreamResponse(statusCode: 500, detail: "server error")) }
        // Ingested: check order and fencing at the moment it lands.
        land(delivery)
        let answerAt = now + (slowDelay() ?? 1 + Int64(random.next() % 5))
        if answerAt >= delivery.deadlineReal {
            timedOutAttempts[delivery.event.number, default: 0] += 1
            schedule(at: delivery.deadlineReal, .deliveryOutcome(delivery, response: Self.timedOut))
        } else {
            schedule(at: answerAt, .deliveryOutcome(delivery, response: UpstreamResponse(statusCode: 202, detail: "accepted")))
        }
    }

    mutating func reply(_ delivery: Delivery, _ response: UpstreamResponse) {
        schedule(at: min(now + 1 + Int64(random.next() % 5), delivery.deadlineReal), .deliveryOutcome(delivery, response: response))
    }

    /// The answer reaches the node that sent the request (a paused one when it wakes).
    mutating func deliveryFinished(_ delivery: Delivery, response: UpstreamResponse) {
        let id = delivery.node
        guard nodes[id - 1].incarnation == delivery.incarnation, nodes[id - 1].engine != nil else { return }
        if let until = nodes[id - 1].pausedUntil {
            schedule(at: until, .deliveryOutcome(delivery, response: response))
            return
        }
        let local = localTime(id)
        let event = delivery.event
        nodes[id - 1].awaitingOutcome[event.key] = (event.number, delivery.term, local, false)
        let jitter = Double(random.next() % 1_000) / 1_000
        let wallClock = now
        drive(id) {
            $0.deliveryFinished(eventNumber: event.number, response: response, now: local, wallClockMilliseconds: wallClock, jitter: jitter)
        }
    }
}
