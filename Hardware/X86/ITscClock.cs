namespace ActorVm.Hardware.X86;

/// <summary>
/// The guest's time-stamp counter. The VM owns one clock shared by all its vCPUs (host monotonic
/// time scaled to the configured TSC frequency); tests pass a manual clock for virtual time.
/// </summary>
public interface ITscClock
{
    /// <summary>Guest TSC ticks per second.</summary>
    ulong Frequency { get; }

    ulong ReadTsc();
}

/// <summary>Host monotonic time scaled to <see cref="Frequency"/>.</summary>
public sealed class HostTscClock(ulong frequency) : ITscClock
{
    private readonly long _origin = System.Diagnostics.Stopwatch.GetTimestamp();
    private readonly double _scale = (double)frequency / System.Diagnostics.Stopwatch.Frequency;

    public ulong Frequency { get; } = frequency;

    public ulong ReadTsc() => (ulong)((System.Diagnostics.Stopwatch.GetTimestamp() - _origin) * _scale);

    /// <summary>Host Stopwatch ticks until the guest TSC reaches <paramref name="tsc"/>.</summary>
    public TimeSpan Until(ulong tsc)
    {
        var now = ReadTsc();
        return tsc <= now ? TimeSpan.Zero : TimeSpan.FromSeconds((tsc - now) / (double)Frequency);
    }
}

/// <summary>A clock that moves only when told to: virtual time for tests.</summary>
public sealed class ManualTscClock(ulong frequency = 1_000_000_000) : ITscClock
{
    private long _now;

    public ulong Frequency { get; } = frequency;

    public ulong ReadTsc() => (ulong)Volatile.Read(ref _now);

    public void Advance(ulong ticks) => Interlocked.Add(ref _now, (long)ticks);

    public void Set(ulong tsc) => Volatile.Write(ref _now, (long)tsc);
}
