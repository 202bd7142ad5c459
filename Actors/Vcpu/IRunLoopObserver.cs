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
    /// <summary>Called once by the VmActor before any vCPU starts: the vCPUs the hooks will name (their shared state and Cpu).</summary>
    void Attach(IReadOnlyList<VcpuContext> vcpus)
    {
    }

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

    // The hooks below default to nothing, so observers that only trace (the host's trace-event
    // recorder) need not implement them. The LAPIC actor builds snapshots only when an observer
    // is installed.

    /// <summary>
    /// kvm_get_apic_interrupt (INTA) in the LAPIC actor: <paramref name="vector"/> moved from IRR
    /// to ISR, or -1 when nothing was deliverable; <paramref name="before"/> is IRR/ISR/TPR just before.
    /// </summary>
    void Acknowledged(int vcpu, Stress.ApicSnapshot before, int vector)
    {
    }

    /// <summary>
    /// Right before <see cref="Entry"/>, on the vCPU actor: whether the entry asks for an
    /// interrupt-window exit, and the event it injects (I11: an IRQ that cannot be injected
    /// because of IF=0 or a shadow must leave a window request behind).
    /// </summary>
    void InterruptWindowAtEntry(int vcpu, bool irqWindow, EventInjection? injection, bool forced)
    {
    }

    /// <summary>An EOI write (xAPIC MMIO or x2APIC MSR) was applied; the LAPIC state before and after it.</summary>
    void EndOfInterrupt(int vcpu, Stress.ApicSnapshot before, Stress.ApicSnapshot after)
    {
    }

    /// <summary>
    /// __apic_accept_irq posted INIT (<paramref name="init"/>) or SIPI into the vCPU's pending
    /// events; called right after the post, in the LAPIC actor. <paramref name="sipiWasPending"/>:
    /// a SIPI was pending just before an INIT post (which replaces it), for statistics only.
    /// </summary>
    void ApicEventPosted(int vcpu, bool init, bool sipiWasPending)
    {
    }

    /// <summary>kvm_apic_accept_events took pending INIT/SIPI events and moved mp_state; the run loop calls it after the change.</summary>
    void ApicEventsAccepted(int vcpu, in ApicEventsTaken taken)
    {
    }
}

/// <summary>
/// What one kvm_apic_accept_events did: the pending events it took (<see cref="VcpuShared.ApicInit"/>,
/// <see cref="VcpuShared.ApicSipi"/>), the SIPI vector, mp_state before and after, and CS:IP
/// before (a dropped SIPI must leave them alone; a started AP runs at vector·256:0).
/// </summary>
public readonly record struct ApicEventsTaken(int Events, byte SipiVector, RunLoop.MpState Before, RunLoop.MpState After, ushort CsBefore, ulong RipBefore);

/// <summary>
/// Test-only switches that widen race windows or break the protocol on purpose (negative
/// controls for the checker). Off by default; never set them outside stress runs.
/// </summary>
/// <param name="MaxDelayMicroseconds">Random host-side delay (0 = none) between make_request and kick, between E5 and E7, between publishing "blocked" and the final check_block, and between posting an NMI, INIT or SIPI and making its request.</param>
/// <param name="SkipEntryRecheck">Breaks I2: E7 and the E10 re-check are skipped.</param>
/// <param name="KickBeforeRequest">Breaks I1: the LAPIC kicks before it makes the request.</param>
public sealed record FaultInjection(int MaxDelayMicroseconds = 0, bool SkipEntryRecheck = false, bool KickBeforeRequest = false, int Seed = 0)
{
    [ThreadStatic]
    private static Random? _random;

    private long _turns;

    /// <summary>Actor failure injection: this actor throws <see cref="InjectedFailureException"/> on its <see cref="FailAfter"/>-th turn.</summary>
    public Stress.FailingActor Fail { get; init; }

    public long FailAfter { get; init; } = 1000;

    /// <summary>Also yield the thread at random at the delay points, so actors are dispatched in a different order.</summary>
    public bool ShuffleDispatch { get; init; }

    /// <summary>
    /// Breaks I11: the LAPIC ignores TPR/PPR when it offers an interrupt for injection. It
    /// publishes the highest IRR vector as deliverable and INTA acknowledges it even when its
    /// class does not beat PPR (SDM 11.8.3.1; KVM apic_has_interrupt_for_ppr is skipped). A storm
    /// that raises TPR (<c>mixed</c>) must report I11.
    /// </summary>
    public bool IgnorePriority { get; init; }

    /// <summary>
    /// Breaks I14: kvm_apic_accept_events honours a SIPI in any mp_state, not only in
    /// INIT_RECEIVED, so a stray SIPI restarts a running or halted AP at vector·256:0 (SDM
    /// 9.4.4: a SIPI outside wait-for-SIPI is ignored). <c>sipi-race</c> must report I14.
    /// </summary>
    public bool AcceptStraySipi { get; init; }

    /// <summary>
    /// Breaks I13: the sender's LAPIC accepts each self-IPI (ICR self shorthand or SELF_IPI)
    /// twice, as a delivery path that also handed the sender its own broadcast would. The second
    /// acceptance coalesces in IRR, so only the checker can see it; <c>self-ipi</c> must report I13.
    /// </summary>
    public bool DuplicateSelfIpi { get; init; }

    /// <summary>Called at the top of each turn of the vCPU, run-loop and LAPIC actors.</summary>
    public void MaybeFail(Stress.FailingActor actor, int vcpu)
    {
        if (Fail == actor && Interlocked.Increment(ref _turns) == FailAfter)
        {
            throw new InjectedFailureException($"injected failure in the {actor} actor of vCPU {vcpu} (turn {FailAfter})");
        }
    }

    /// <summary>Spins for a random time up to <see cref="MaxDelayMicroseconds"/>.</summary>
    public void Delay()
    {
        if (MaxDelayMicroseconds <= 0)
        {
            return;
        }

        _random ??= new Random(HashCode.Combine(Seed, Environment.CurrentManagedThreadId));
        if (ShuffleDispatch && _random.Next(4) == 0)
        {
            Thread.Yield();
        }

        var until = System.Diagnostics.Stopwatch.GetTimestamp()
            + (long)(_random.NextDouble() * MaxDelayMicroseconds * System.Diagnostics.Stopwatch.Frequency / 1e6);
        while (System.Diagnostics.Stopwatch.GetTimestamp() < until)
        {
            Thread.SpinWait(20);
        }
    }
}

/// <summary>Thrown by <see cref="FaultInjection.MaybeFail"/>: an actor failure on purpose.</summary>
public sealed class InjectedFailureException(string message) : Exception(message);
