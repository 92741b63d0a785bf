import RelayCore
import Testing

@Suite struct DrillRecordTests {
    static func drill(note: String = "", canaries: Int = 10) -> DrillRecord {
        DrillRecord(
            startedAtMilliseconds: 1, hard: true, fromLeader: 1, toLeader: 3, acceptedAfterMilliseconds: 800,
            deliveredAfterMilliseconds: 950,
            canaries: canaries, delivered: canaries, inOrder: true, objectiveMilliseconds: 10_000, passed: true, note: note)
    }

    @Test func theNewestDrillsAreKeptWithIDsAssignedOnApply() {
        var machine = RelayStateMachine(limits: .init())
        var deleted: [UInt64] = []
        for _ in 0..<(DrillRecord.maxDrills + 10) {
            var effects = RelayStateMachine.Effects()
            guard case .drillRecorded(let recorded) = machine.apply(.recordDrill(Self.drill()), effects: &effects) else {
                Issue.record("not recorded")
                return
            }
            #expect(effects.mutations.first == .putDrill(recorded))
            for case .deleteDrill(let id) in effects.mutations { deleted.append(id) }
        }
        #expect(machine.drills.count == DrillRecord.maxDrills)
        #expect(machine.drills.map(\.id) == Array(11...UInt64(DrillRecord.maxDrills + 10)))
        #expect(deleted == Array(1...10))
        #expect(RelayStateMachine(limits: .init(), contents: machine.contents).drills == machine.drills)
    }

    @Test func aRecordOutOfBoundsIsRefusedAndChangesNothing() {
        var machine = RelayStateMachine(limits: .init())
        var effects = RelayStateMachine.Effects()
        let long = String(repeating: "x", count: DrillRecord.maxNoteBytes + 1)
        guard case .drillRefused = machine.apply(.recordDrill(Self.drill(note: long)), effects: &effects) else {
            Issue.record("a note too long was kept")
            return
        }
        _ = machine.apply(.recordDrill(Self.drill(canaries: DrillRecord.maxCanaries + 1)), effects: &effects)
        #expect(machine.drills.isEmpty && effects.mutations.isEmpty)
    }

    @Test func aRecordSurvivesTheBinaryEncoding() throws {
        var writer = ByteWriter()
        writer.write(RelayCommand.recordDrill(Self.drill(note: "leader 1 killed")))
        var reader = ByteReader(writer.bytes)
        #expect(try reader.readCommand() == .recordDrill(Self.drill(note: "leader 1 killed")))
    }
}
