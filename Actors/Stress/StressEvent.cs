namespace ActorVm.Actors.Stress;

/// <summary>
/// One run-loop event as the invariant checker saw it, kept in a small per-vCPU ring so a
/// violation can show what led to it. <see cref="Seq"/> is the vCPU's own event sequence number.
/// </summary>
public readonly record struct StressEvent(long Seq, long Timestamp, string Kind, long A, long B)
{
    public override string ToString() =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"#{Seq} {Kind} 0x{A:x} 0x{B:x}");
}
