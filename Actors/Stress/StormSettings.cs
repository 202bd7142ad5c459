using ActorVm.Actors.Vm;

namespace ActorVm.Actors.Stress;

/// <summary>One storm run: which storm, how big, how long, which seed, and the test-only switches.</summary>
public sealed record StormSettings(StormKind Kind, int Vcpus, TimeSpan Duration, int Seed)
{
    /// <summary>Random host-side delays at the dangerous points (FaultInjection.Delay) and random yields that reorder dispatch.</summary>
    public bool Delays { get; init; }

    public int MaxDelayMicroseconds { get; init; } = 50;

    /// <summary>Negative control: skip the E7/E10 re-check (must be reported as I2).</summary>
    public bool SkipEntryRecheck { get; init; }

    /// <summary>Negative control: the LAPIC kicks before it makes the request (must be reported as I1 or I4).</summary>
    public bool KickBeforeRequest { get; init; }

    /// <summary>Negative control: the LAPIC offers and acknowledges the highest IRR vector regardless of PPR (must be reported as I11).</summary>
    public bool IgnorePriority { get; init; }

    /// <summary>Negative control: a SIPI outside INIT_RECEIVED restarts the AP instead of being dropped (must be reported as I14).</summary>
    public bool AcceptStraySipi { get; init; }

    /// <summary>Negative control: the sender's LAPIC accepts each self-IPI twice (must be reported as I13).</summary>
    public bool DuplicateSelfIpi { get; init; }

    /// <summary>Whether any switch that breaks the protocol on purpose is on.</summary>
    public bool BreaksProtocol => SkipEntryRecheck || KickBeforeRequest || IgnorePriority || AcceptStraySipi || DuplicateSelfIpi;

    /// <summary>Actor failure injection: which actor throws, after how many of its turns.</summary>
    public FailingActor Fail { get; init; } = FailingActor.None;

    public long FailAfter { get; init; } = 1000;

    /// <summary>How long a pending request or wake condition may go unanswered before the checker calls it lost.</summary>
    public TimeSpan StallBound { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long every vCPU may take to reach the storm's barrier (default 10 s + 20 ms per vCPU).</summary>
    public TimeSpan? StartBound { get; init; }

    /// <summary>
    /// Checker events the storm should see before it stops: past <see cref="Duration"/> it runs on
    /// until then, up to <see cref="MaxDuration"/>. A short CI storm on a starved host then still
    /// exercises the run loop instead of ending after a handful of events. 0 = none.
    /// </summary>
    public long MinEvents { get; init; }

    /// <summary>The longest a storm runs while it waits for <see cref="MinEvents"/> (five durations).</summary>
    public TimeSpan MaxDuration => MinEvents > 0 ? Duration * 5 : Duration;

    /// <summary>How long the guests get, after the stop flag, to finish what is in flight.</summary>
    public TimeSpan DrainBound { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>End the storm at the first violation (the negative controls' time bound).</summary>
    public bool StopOnViolation { get; init; } = true;

    /// <summary>Trace every kvm_entry and let the checker match the lines with the entries (I9); costs a formatted line per entry.</summary>
    public bool CheckTrace { get; init; } = true;

    public long SliceInstructions { get; init; } = 20_000;

    /// <summary>
    /// The guests' TSC frequency (MachineConfig's 2 GHz by default). The timer storms re-arm
    /// 2,000-20,000 ticks ahead, so a slower TSC makes their timer IRQs rarer in wall time: the
    /// IgnorePriority control needs a vector that TPR masks pending without the timer's higher
    /// class beating it legally, which a 2 GHz TSC leaves to a warmed-up JIT.
    /// </summary>
    public ulong TscHz { get; init; } = 2_000_000_000;

    public VcpuDispatcher Dispatcher { get; init; } = VcpuDispatcher.Shared;

    /// <summary>The LAPIC interface the guests program: x2APIC MSRs, or the xAPIC MMIO page (IPIs as ICR writes at 0xFEE00310/0xFEE00300, up to 255 vCPUs).</summary>
    public StormApicMode Apic { get; init; } = StormApicMode.X2Apic;

    public string Name => Apic == StormApicMode.XApic ? StormCatalog.Name(Kind) + "/xapic" : StormCatalog.Name(Kind);
}
