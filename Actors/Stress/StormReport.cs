namespace ActorVm.Actors.Stress;

/// <summary>
/// What one storm did: run-loop events the checker saw, interrupts the guests counted, what was
/// lost or duplicated (guest ledger), and the checker's violations. <see cref="Seed"/> reproduces
/// the guest program and the fault-injection decisions (host scheduling stays nondeterministic).
/// </summary>
public sealed record StormReport(
    string Storm,
    int Vcpus,
    int Seed,
    bool Delays,
    double Seconds,
    long Events,
    long GuestInterrupts,
    long Sent,
    long Received,
    long Lost,
    long Duplicates,
    long ViolationCount,
    IReadOnlyList<Violation> Violations,
    IReadOnlyList<string> GuestErrors,
    bool Drained,
    string Outcome,
    bool OutcomeExpected,
    long ForcedLeaks,
    long ForcedEntries,
    CheckerCoverage Coverage)
{
    public double EventsPerSecond => Seconds > 0 ? Events / Seconds : 0;

    /// <summary>APIC-access exits of the whole run: the xAPIC page's loads and stores (0 with x2APIC guests).</summary>
    public long ApicAccessExits { get; init; }

    /// <summary>No violation, nothing lost or duplicated, the guests drained, the VM ended as the harness asked.</summary>
    public bool Passed => ViolationCount == 0 && Lost == 0 && Duplicates == 0 && GuestErrors.Count == 0 && Drained && OutcomeExpected;
}
