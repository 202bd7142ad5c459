namespace ActorVm.Actors.Stress;

/// <summary>
/// A broken invariant of spec §10: which one, on which vCPU, the events around it (oldest first)
/// and the seed of the run that produced it.
/// </summary>
public sealed record Violation(string Invariant, int Vcpu, string Detail, IReadOnlyList<StressEvent> Recent, int Seed)
{
    public override string ToString() =>
        $"{Invariant} violated on vCPU {Vcpu} (seed {Seed}): {Detail}; last events: {string.Join(", ", Recent)}";
}
