using ActorVm.Actors.Stats;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Vcpu;

/// <summary>
/// Hooks for the invariant checker of the stress work (issue 6). Null by default: each call
/// site costs one null test. Calls come from the vCPU's actors (VcpuActor for entries and exits,
/// RunLoopActor for the rest), so per vCPU they are sequential; implementations must be
/// thread-safe across vCPUs.
/// </summary>
public interface IRunLoopObserver
{
    /// <summary>
    /// An entry passed E7 (or the E10 re-check) and is about to run the guest.
    /// <paramref name="requestsAtCheck"/> and <paramref name="modeAtCheck"/> are what that check
    /// saw: a nonzero request word or EXITING here violates I2.
    /// </summary>
    void Entry(int vcpu, long requestsAtCheck, int modeAtCheck, bool forced, bool reentry);

    /// <summary>The entry's exit and the fastpath verdict (before E11).</summary>
    void Exit(int vcpu, in VmExit exit, FastpathResult fastpath, bool forced);

    /// <summary>E7 refused an entry.</summary>
    void EntryCancelled(int vcpu, long requestsAtCheck, int modeAtCheck);

    /// <summary>The run loop serviced (check-and-cleared) a request bit.</summary>
    void RequestServiced(int vcpu, int bit);

    /// <summary>An event was loaded for the next entry.</summary>
    void Injected(int vcpu, EventInjection injection, bool reinjected);

    /// <summary>vcpu_block: the vCPU blocked (true) or woke (false).</summary>
    void BlockChanged(int vcpu, bool blocked);
}

/// <summary>
/// Test-only switches that widen race windows or break the protocol on purpose (negative
/// controls for the checker). Off by default; never set them outside stress runs.
/// </summary>
/// <param name="MaxDelayMicroseconds">Random host-side delay (0 = none) between make_request and kick, between E5 and E7, and between publishing "blocked" and the final check_block.</param>
/// <param name="SkipEntryRecheck">Breaks I2: E7 and the E10 re-check are skipped.</param>
/// <param name="KickBeforeRequest">Breaks I1: the LAPIC kicks before it makes the request.</param>
public sealed record FaultInjection(int MaxDelayMicroseconds = 0, bool SkipEntryRecheck = false, bool KickBeforeRequest = false, int Seed = 0)
{
    [ThreadStatic]
    private static Random? _random;

    /// <summary>Spins for a random time up to <see cref="MaxDelayMicroseconds"/>.</summary>
    public void Delay()
    {
        if (MaxDelayMicroseconds <= 0)
        {
            return;
        }

        _random ??= new Random(HashCode.Combine(Seed, Environment.CurrentManagedThreadId));
        var until = System.Diagnostics.Stopwatch.GetTimestamp()
            + (long)(_random.NextDouble() * MaxDelayMicroseconds * System.Diagnostics.Stopwatch.Frequency / 1e6);
        while (System.Diagnostics.Stopwatch.GetTimestamp() < until)
        {
            Thread.SpinWait(20);
        }
    }
}
