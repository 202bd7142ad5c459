using System.Diagnostics;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Stress;

/// <summary>
/// Checks the run-loop invariants of spec §10 from the observer hooks (one null test per call
/// site when no checker is installed) plus a sampler thread that watches each vCPU's shared
/// request/mode/blocked state for what no single event can show: a request left pending in
/// guest mode (I1) and a wake-up that never came (I4).
/// <para>
/// The rules are split by subject: this file holds the request/mode/forced-entry rules (I1-I8)
/// and the sampler; <c>.Apic</c> the IRR/ISR/PPR and self-IPI rules (I11, I13); <c>.InitSipi</c>
/// the halt and INIT/SIPI rules (I12, I14); <c>.Trace</c> the kvm_entry trace rule (I9).
/// </para>
/// <para>
/// Per vCPU the hooks arrive sequentially (the vCPU's actors hand the Cpu over by message), so
/// each vCPU's track is guarded by its own, uncontended lock.
/// </para>
/// </summary>
public sealed partial class InvariantChecker : IRunLoopObserver, Lapic.IApicEventListener, IDisposable
{
    private const int RingSize = 16;
    private const int MaxKept = 64;

    private readonly int _seed;
    private readonly long _stallTicks;
    private readonly TimeSpan _samplePeriod;
    private readonly List<Violation> _violations = [];
    private Track[] _tracks = [];
    private IReadOnlyList<VcpuContext> _vcpus = [];
    private Thread? _sampler;
    private volatile bool _stopping;
    private long _violationCount;
    private long _forcedLeaks;
    private long _forcedEntries;
    private long _transientPendingSamples;
    private long _acknowledges;
    private long _eois;
    private long _inits;
    private long _sipisDropped;
    private long _sipiStarts;
    private long _sipisOverridden;
    private long _windowChecks;
    private long _haltsIfClear;

    /// <param name="seed">The run's seed, quoted in every violation.</param>
    /// <param name="stallBound">How long a request may stay pending in guest mode, or a wake condition stay unanswered, before it counts as lost.</param>
    public InvariantChecker(int seed, TimeSpan stallBound, TimeSpan? samplePeriod = null)
    {
        _seed = seed;
        _stallTicks = (long)(stallBound.TotalSeconds * Stopwatch.Frequency);
        _samplePeriod = samplePeriod ?? TimeSpan.FromMilliseconds(20);
    }

    /// <summary>Every hook call so far (the "events" of a storm).</summary>
    public long Events
    {
        get
        {
            long sum = 0;
            foreach (var t in _tracks)
            {
                sum += Volatile.Read(ref t.Seq);
            }

            return sum;
        }
    }

    public long ViolationCount => Interlocked.Read(ref _violationCount);

    /// <summary>Forced entries that retired guest instructions with the self-IPI method (allowed there: the IPI races the entry; see VcpuActor.SendSelfIpi).</summary>
    public long ForcedLeaks => Interlocked.Read(ref _forcedLeaks);

    /// <summary>Entries with force_immediate_exit (E8) the checker saw.</summary>
    public long ForcedEntries => Interlocked.Read(ref _forcedEntries);

    /// <summary>The first violations (at most 64 are kept; <see cref="ViolationCount"/> counts all).</summary>
    public IReadOnlyList<Violation> Violations
    {
        get
        {
            lock (_violations)
            {
                return [.. _violations];
            }
        }
    }

    /// <summary>Times the sampler saw a request pending in guest mode (transiently: normal between make_request and the kick's effect).</summary>
    public long TransientPendingSamples => Interlocked.Read(ref _transientPendingSamples);

    public void Attach(IReadOnlyList<VcpuContext> vcpus)
    {
        _vcpus = vcpus;
        _tracks = [.. vcpus.Select(_ => new Track())];
        _selfIpis = new long[vcpus.Count * 2];
        _sampler = new Thread(SampleLoop) { IsBackground = true, Name = "stress-sampler" };
        _sampler.Start();
    }

    /// <summary>Stops the sampler (call before the VM is torn down: a dying VM is not a lost wake-up).</summary>
    public void Stop()
    {
        _stopping = true;
        if (_sampler is { } s && s != Thread.CurrentThread)
        {
            s.Join(TimeSpan.FromSeconds(2));
        }
    }

    /// <summary>
    /// The checks that need the whole run (I13: every self-IPI sent was accepted). Call once the
    /// VM has ended, when no LAPIC is between a send and its acceptance.
    /// </summary>
    public void Finish()
    {
        Stop();
        CheckSelfIpisBalanced();
    }

    public void Dispose() => Stop();

    /// <summary>How often each event-driven rule of I9, I11-I14 had something to check.</summary>
    public CheckerCoverage Coverage => new(
        TraceLines,
        Interlocked.Read(ref _acknowledges),
        Interlocked.Read(ref _eois),
        SelfIpisSent,
        Interlocked.Read(ref _inits),
        Interlocked.Read(ref _sipisDropped),
        Interlocked.Read(ref _sipiStarts),
        Interlocked.Read(ref _sipisOverridden),
        Interlocked.Read(ref _haltsIfClear),
        Interlocked.Read(ref _windowChecks));

    // ---- hooks ---------------------------------------------------------------------------------

    public void Entry(int vcpu, long requestsAtCheck, int modeAtCheck, bool forced, bool reentry)
    {
        var t = Record(vcpu, reentry ? "reentry" : forced ? "entry[forced]" : "entry", requestsAtCheck, modeAtCheck);
        Interlocked.Increment(ref t.Entries);

        // I2: E7 and every E10 iteration refuse the entry when requests != 0 or mode == EXITING.
        if (requestsAtCheck != 0 || modeAtCheck == ModeWord.ExitingGuestMode)
        {
            Report("I2", vcpu, $"entry with requests 0x{requestsAtCheck:x} pending, mode {ModeName(modeAtCheck)} at the re-check");
        }

        var shared = _vcpus[vcpu].Shared;

        // I3: only the owner moves OUTSIDE→IN (E5) and IN→OUTSIDE (E7/E11); nobody else may have
        // made the vCPU OUTSIDE between E5 and this entry.
        if (shared.Mode.Read() == ModeWord.OutsideGuestMode)
        {
            Report("I3", vcpu, "entering the guest while mode is OUTSIDE_GUEST_MODE");
        }

        CheckTraceAtEntry(vcpu, t, forced, reentry);
        CheckEntryAfterHalt(vcpu, t);
        CheckAckConsumed(vcpu, t);

        if (forced)
        {
            Interlocked.Increment(ref _forcedEntries);

            // I5: E8 made EVENT after E7; the run loop, the only one that clears it, is waiting.
            if (!shared.TestRequest(KvmRequest.Event))
            {
                Report("I5", vcpu, "forced entry without KVM_REQ_EVENT pending");
            }

            // I7: the E8 EVENT makes the E10 re-check fail, so a forced inner loop enters once.
            if (reentry)
            {
                Report("I7", vcpu, "a second entry in a forced inner loop");
            }
        }
    }

    public void Exit(int vcpu, in VmExit exit, FastpathResult fastpath, bool forced)
    {
        var track = Record(vcpu, "exit", (long)exit.Reason, exit.InstructionsRetired);
        NoteHalt(vcpu, track, exit, fastpath);
        var shared = _vcpus[vcpu].Shared;
        if (shared.Mode.Read() == ModeWord.OutsideGuestMode)
        {
            Report("I3", vcpu, $"exit {exit.Reason.TraceName()} observed with mode already OUTSIDE before E11");
        }

        if (forced && exit.InstructionsRetired != 0)
        {
            if (_vcpus[vcpu].Options.ImmediateExit == Vm.ImmediateExitMethod.PreemptionTimer)
            {
                // I6: a forced entry with preemption timer value 0 retires nothing.
                Report("I6", vcpu, $"forced entry retired {exit.InstructionsRetired} instructions (exit {exit.Reason.TraceName()})");
            }
            else
            {
                Interlocked.Increment(ref _forcedLeaks);
            }
        }

        if (forced && exit.Reason == ExitReason.PreemptionTimer && fastpath != FastpathResult.ExitHandled)
        {
            Report("I6", vcpu, $"forced preemption-timer exit with fastpath {fastpath}, not EXIT_HANDLED");
        }

        // I8: the slowpath preemption-timer handler runs only for L2 with an unforced entry.
        if (exit.Reason == ExitReason.PreemptionTimer && !forced && !shared.L2Active && fastpath == FastpathResult.None)
        {
            Report("I8", vcpu, "preemption-timer exit sent to the slowpath without L2");
        }
    }

    public void EntryCancelled(int vcpu, long requestsAtCheck, int modeAtCheck) =>
        Record(vcpu, "cancel", requestsAtCheck, modeAtCheck);

    public void RequestServiced(int vcpu, int bit)
    {
        Record(vcpu, "service", bit, 0);
        if (_vcpus[vcpu].Shared.Mode.Read() == ModeWord.InGuestMode)
        {
            Report("I3", vcpu, $"request {KvmRequest.Name(bit)} serviced while IN_GUEST_MODE");
        }
    }

    public void Injected(int vcpu, EventInjection injection, bool reinjected)
    {
        var track = Record(vcpu, "inject", injection.Vector, (long)injection.Type);
        CheckInjectedVector(vcpu, track, injection);
        if (injection.Type == EventType.Nmi)
        {
            track.HaltWokenBy = "NMI";
        }

        if (injection.Type == EventType.ExternalInterrupt && !reinjected)
        {
            // I11: nothing is injected while IF=0 or in an STI/MOV-SS shadow (the hook runs on
            // the run loop's turn, when the Cpu is its own).
            var cpu = _vcpus[vcpu].Cpu;
            if (!cpu.IF || cpu.InterruptShadow)
            {
                Report("I11", vcpu, $"IRQ 0x{injection.Vector:x} injected with IF={(cpu.IF ? 1 : 0)}, shadow={cpu.InterruptShadow}");
            }
        }
    }

    public void BlockChanged(int vcpu, bool blocked)
    {
        Record(vcpu, blocked ? "block" : "wake", 0, 0);
        if (_vcpus[vcpu].Shared.Mode.Read() == ModeWord.InGuestMode)
        {
            Report("I3", vcpu, $"{(blocked ? "blocking" : "waking")} while IN_GUEST_MODE");
        }

    }

    // ---- the sampler (I1, I4) -----------------------------------------------------------------

    private void SampleLoop()
    {
        while (!_stopping)
        {
            Thread.Sleep(_samplePeriod);
            var now = Stopwatch.GetTimestamp();
            for (var i = 0; i < _tracks.Length && !_stopping; i++)
            {
                Sample(i, now);
            }
        }
    }

    private void Sample(int vcpu, long now)
    {
        var t = _tracks[vcpu];
        var shared = _vcpus[vcpu].Shared;
        var mode = shared.Mode.Read();
        var requests = shared.Requests;
        var entries = Interlocked.Read(ref t.Entries);

        // I1: a request made while the target is IN forces an exit before further guest progress.
        // The same entry still running with the same bits pending for the whole bound means the
        // request was made without a kick that could reach it.
        if (mode == ModeWord.InGuestMode && requests != 0)
        {
            Interlocked.Increment(ref _transientPendingSamples);
            if (t.PendingSince != 0 && t.PendingEntry == entries && (t.PendingBits & requests) != 0)
            {
                if (now - t.PendingSince >= _stallTicks && !t.PendingReported)
                {
                    t.PendingReported = true;
                    Report("I1", vcpu, $"requests 0x{requests & t.PendingBits:x} pending for {Ms(now - t.PendingSince)} ms while the same entry stayed IN_GUEST_MODE (no kick reached it)");
                }
            }
            else
            {
                (t.PendingSince, t.PendingEntry, t.PendingBits, t.PendingReported) = (now, entries, requests, false);
            }
        }
        else
        {
            t.PendingSince = 0;
        }

        // I4: a blocked vCPU wakes on runnable (an injectable IRQ with IF=1, INIT/SIPI, NMI) or
        // UNBLOCK. Blocked with such a condition, and no wake-up since, for the bound: lost.
        var epoch = shared.BlockEpoch;
        if (shared.Blocked && WakeCondition(vcpu, shared) is { } why)
        {
            if (t.WakeSince != 0 && t.WakeEpoch == epoch)
            {
                if (now - t.WakeSince >= _stallTicks && !t.WakeReported)
                {
                    t.WakeReported = true;
                    Report("I4", vcpu, $"blocked for {Ms(now - t.WakeSince)} ms with {why} (lost wake-up)");
                }
            }
            else
            {
                (t.WakeSince, t.WakeEpoch, t.WakeReported) = (now, epoch, false);
            }
        }
        else
        {
            t.WakeSince = 0;
        }
    }

    private string? WakeCondition(int vcpu, VcpuShared shared)
    {
        if (shared.TestRequest(KvmRequest.Unblock))
        {
            return "KVM_REQ_UNBLOCK pending";
        }

        if (shared.ApicEvents != 0)
        {
            return "INIT/SIPI pending";
        }

        if (shared.NmiQueued != 0 || shared.TestRequest(KvmRequest.Nmi))
        {
            return "an NMI pending";
        }

        // The Cpu is quiescent while blocked; IF was written before "blocked" was published.
        // Posted vectors (the PIR, not yet merged by the LAPIC) count as KVM's sync_pir_to_irr
        // makes them count for kvm_vcpu_has_events.
        var vector = Math.Max(shared.HighestDeliverable, shared.InterruptPending ? shared.HighestPosted : -1);
        if (shared.InterruptPending && _vcpus[vcpu].Cpu.IF)
        {
            return $"IRQ 0x{vector:x} deliverable and IF=1";
        }

        return null;
    }

    /// <summary>A vCPU's shared state and last events, for the report of a storm that did not drain.</summary>
    public string Describe(int vcpu)
    {
        var shared = _vcpus[vcpu].Shared;
        var t = _tracks[vcpu];
        StressEvent[] recent;
        lock (t)
        {
            recent = [.. t.Ring.Where(e => e.Seq > 0).OrderBy(e => e.Seq)];
        }

        return $"vCPU {vcpu}: mode {ModeName(shared.Mode.Read())}, requests 0x{shared.Requests:x}, blocked {shared.Blocked}, " +
            $"apic events {shared.ApicEvents}, highest IRR {shared.HighestDeliverable}, timer armed {shared.TimerArmed}; last events: {string.Join(", ", recent.TakeLast(8))}";
    }

    // ---- bookkeeping --------------------------------------------------------------------------

    private Track Record(int vcpu, string kind, long a, long b)
    {
        var t = _tracks[vcpu];
        lock (t)
        {
            var seq = t.Seq + 1;
            t.Ring[seq % RingSize] = new StressEvent(seq, Stopwatch.GetTimestamp(), kind, a, b);
            Volatile.Write(ref t.Seq, seq);
        }

        return t;
    }

    private void Report(string invariant, int vcpu, string detail)
    {
        Interlocked.Increment(ref _violationCount);
        var t = _tracks[vcpu];
        StressEvent[] recent;
        lock (t)
        {
            recent = [.. t.Ring.Where(e => e.Seq > 0).OrderBy(e => e.Seq)];
        }

        lock (_violations)
        {
            if (_violations.Count < MaxKept)
            {
                _violations.Add(new Violation(invariant, vcpu, detail, recent, _seed));
            }
        }
    }

    private static string ModeName(int mode) => mode switch
    {
        ModeWord.OutsideGuestMode => "OUTSIDE",
        ModeWord.InGuestMode => "IN",
        ModeWord.ExitingGuestMode => "EXITING",
        _ => mode.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static long Ms(long ticks) => ticks * 1000 / Stopwatch.Frequency;

    private sealed class Track
    {
        public readonly StressEvent[] Ring = new StressEvent[RingSize];
        public long Seq;
        public long Entries;

        // I9: kvm_entry lines seen since the last Entry hook, and whether the last one carried the suffix.
        public int TraceLines;
        public bool TraceImmediate;

        // I11: the vector the LAPIC acknowledged for the next injection (-1: none).
        public int Acked = -1;

        // I12: the last exit left the vCPU in HLT with IF=0; what woke it since (null: nothing that may).
        public bool HaltedIfClear;
        public string? HaltWokenBy;

        // I14: an AP that took INIT and no SIPI since.
        public bool WaitingForSipi;

        // Sampler-only state.
        public long PendingSince;
        public long PendingEntry;
        public long PendingBits;
        public bool PendingReported;
        public long WakeSince;
        public long WakeEpoch;
        public bool WakeReported;
    }
}
