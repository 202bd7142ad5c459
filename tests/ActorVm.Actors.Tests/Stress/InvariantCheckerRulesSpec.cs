using ActorVm.Actors.Logging;
using ActorVm.Actors.RunLoop;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Stress;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Tests.Stress;

/// <summary>
/// The checker's I9, I11-I14 rules on hand-made event sequences: each fires on the violation it
/// exists for (so it can fail) and stays quiet on the legal sequence next to it.
/// </summary>
public sealed class InvariantCheckerRulesSpec : IDisposable
{
    private readonly Machine _machine = new(new MachineConfig(2, 1));
    private readonly VcpuContext[] _vcpus;
    private readonly InvariantChecker _checker = new(seed: 7, stallBound: TimeSpan.FromSeconds(5));

    public InvariantCheckerRulesSpec()
    {
        var options = new VmOptions { Vcpus = 2 };
        var trace = new Tracepoints(TraceEvents.None, null, _machine.Clock);
        _vcpus = [new VcpuContext(_machine, 0, options, trace), new VcpuContext(_machine, 1, options, trace)];
        _checker.Attach(_vcpus);
        _vcpus[0].Shared.Mode.Set(ModeWord.InGuestMode);
        _vcpus[1].Shared.Mode.Set(ModeWord.InGuestMode);
    }

    public void Dispose()
    {
        _checker.Dispose();
        _machine.Dispose();
    }

    private IEnumerable<string> Found => _checker.Violations.Select(v => v.Invariant);

    private void Entry(int vcpu, bool forced = false, bool reentry = false) =>
        _checker.Entry(vcpu, 0, ModeWord.InGuestMode, forced, reentry);

    // ---- I9 -------------------------------------------------------------------------------------

    [Fact(DisplayName = "I9: a real kvm_entry line matches its entry, forced and not")]
    public void TraceMatches()
    {
        var trace = new Tracepoints(TraceEvents.KvmEntry, _checker.EntryTraceLogger(), _machine.Clock);
        trace.KvmEntry(1, 0x1000, immediateExit: false);
        Entry(1);
        _vcpus[1].Shared.MakeRequest(KvmRequest.Event); // E8's EVENT, so I5 holds
        trace.KvmEntry(1, 0x1000, immediateExit: true);
        Entry(1, forced: true);
        Assert.Empty(_checker.Violations);
        Assert.Equal(2, _checker.TraceLines);
    }

    [Fact(DisplayName = "I9: an unforced entry traced with [immediate exit], a forced one without, a missing line")]
    public void TraceMismatch()
    {
        _ = _checker.EntryTraceLogger();
        _checker.TraceLine("0.000010 kvm_entry: vcpu 0, rip 0x100[immediate exit]");
        Entry(0);
        _vcpus[1].Shared.MakeRequest(KvmRequest.Event);
        _checker.TraceLine("0.000011 kvm_entry: vcpu 1, rip 0x100");
        Entry(1, forced: true);
        Entry(1);
        Assert.Equal(["I9", "I9", "I9"], Found);
        Assert.Contains("unforced entry traced with [immediate exit]", _checker.Violations[0].Detail, StringComparison.Ordinal);
        Assert.Contains("0 kvm_entry lines", _checker.Violations[2].Detail, StringComparison.Ordinal);
    }

    [Fact(DisplayName = "I9: [immediate exit] on a re-entry of the inner loop")]
    public void TraceOnReentry()
    {
        _ = _checker.EntryTraceLogger();
        _checker.TraceLine("0.000010 kvm_entry: vcpu 0, rip 0x100");
        Entry(0);
        _checker.TraceLine("0.000012 kvm_entry: vcpu 0, rip 0x100[immediate exit]");
        _vcpus[0].Shared.MakeRequest(KvmRequest.Event);
        Entry(0, forced: true, reentry: true);
        Assert.Contains(_checker.Violations, v => v.Invariant == "I9" && v.Detail.Contains("re-entry", StringComparison.Ordinal));
    }

    // ---- I11 ------------------------------------------------------------------------------------

    [Theory(DisplayName = "I11: INTA must take the highest IRR vector whose class is above PPR")]
    [InlineData(new[] { 0x40, 0x50 }, new int[0], 0x00, 0x50, true)]
    [InlineData(new[] { 0x40, 0x50 }, new int[0], 0x00, 0x40, false)] // not the highest
    [InlineData(new[] { 0x45 }, new int[0], 0x40, -1, true)] // TPR class 4 masks 0x45
    [InlineData(new[] { 0x45 }, new int[0], 0x40, 0x45, false)]
    [InlineData(new[] { 0x52 }, new[] { 0x51 }, 0x00, -1, true)] // ISR 0x51: PPR 0x50 masks the class
    [InlineData(new[] { 0x52 }, new[] { 0x51 }, 0x00, 0x52, false)]
    [InlineData(new[] { 0x61 }, new[] { 0x51 }, 0x30, 0x61, true)]
    public void AcknowledgePicksHighestAbovePpr(int[] irr, int[] isr, int tpr, int acked, bool legal)
    {
        _checker.Acknowledged(0, ApicSnapshot.From(irr, isr, (byte)tpr), acked);
        Assert.Equal(legal, _checker.ViolationCount == 0);
        if (!legal)
        {
            Assert.Equal("I11", _checker.Violations[0].Invariant);
        }
    }

    [Fact(DisplayName = "I11: a vector acknowledged while it is in service is reported")]
    public void InServiceTwice()
    {
        _checker.Acknowledged(0, ApicSnapshot.From([0x50], [0x50], 0), 0x50);
        Assert.Contains(_checker.Violations, v => v.Invariant == "I11" && v.Detail.Contains("already in service", StringComparison.Ordinal));
    }

    [Fact(DisplayName = "I11: EOI must clear the highest ISR bit, only that one")]
    public void EoiClearsHighest()
    {
        var before = ApicSnapshot.From([], [0x40, 0x50], 0);
        _checker.EndOfInterrupt(0, before, ApicSnapshot.From([], [0x40], 0));
        Assert.Empty(_checker.Violations);
        _checker.EndOfInterrupt(0, before, ApicSnapshot.From([], [0x50], 0)); // cleared the lower one
        _checker.EndOfInterrupt(1, before, ApicSnapshot.From([], [], 0)); // cleared both
        Assert.Equal(["I11", "I11"], Found);
    }

    [Fact(DisplayName = "I11: the injected IRQ is the acknowledged one, and an acknowledged IRQ is not dropped")]
    public void InjectionFollowsAcknowledge()
    {
        var cpu = _vcpus[0].Cpu;
        cpu.SetSomeFlags(Rflags.IF, Rflags.IF);
        _checker.Acknowledged(0, ApicSnapshot.From([0x50], [], 0), 0x50);
        _checker.Injected(0, new EventInjection(0x50, EventType.ExternalInterrupt), reinjected: false);
        Entry(0);
        Assert.Empty(_checker.Violations);

        _checker.Acknowledged(0, ApicSnapshot.From([0x50], [], 0), 0x50);
        _checker.Injected(0, new EventInjection(0x40, EventType.ExternalInterrupt), reinjected: false);
        _checker.Acknowledged(0, ApicSnapshot.From([0x60], [], 0), 0x60);
        Entry(0);
        Assert.Equal(["I11", "I11"], Found);
        Assert.Contains("acknowledged 0x50", _checker.Violations[0].Detail, StringComparison.Ordinal);
        Assert.Contains("lost", _checker.Violations[1].Detail, StringComparison.Ordinal);
    }

    [Fact(DisplayName = "I11: an IRQ held off by IF=0 needs a window request (or a forced entry); a request or kick arriving later excuses it")]
    public void HeldOffIrqNeedsWindow()
    {
        // How long a late EVENT may take; a thread of its own brings it after 20 ms even when
        // the storms of other tests keep the thread pool busy.
        using var checker = new InvariantChecker(seed: 7, stallBound: TimeSpan.FromSeconds(1));
        checker.Attach(_vcpus);
        var shared = _vcpus[0].Shared; // reset CPU: IF=0
        shared.HighestDeliverable = 0x40;
        checker.InterruptWindowAtEntry(0, irqWindow: true, injection: null, forced: false);
        checker.InterruptWindowAtEntry(0, irqWindow: false, injection: null, forced: true);
        Assert.Empty(checker.Violations);

        // Published after E7: the LAPIC's EVENT request follows.
        var late = new Thread(() =>
        {
            Thread.Sleep(20);
            shared.MakeRequest(KvmRequest.Event);
        });
        late.Start();
        checker.InterruptWindowAtEntry(0, irqWindow: false, injection: null, forced: false);
        late.Join();
        Assert.Empty(checker.Violations);
        shared.ClearRequest(KvmRequest.Event);

        checker.InterruptWindowAtEntry(0, irqWindow: false, injection: null, forced: false);
        var v = Assert.Single(checker.Violations);
        Assert.Equal("I11", v.Invariant);
        Assert.Contains("requests no interrupt window", v.Detail, StringComparison.Ordinal);
        Assert.Equal(3, checker.Coverage.HeldOffIrqs);
    }

    // ---- I12 ------------------------------------------------------------------------------------

    [Fact(DisplayName = "I12: leaving HLT with IF=0 needs an NMI, INIT or SIPI; a fixed IRQ is not enough")]
    public void HaltWithInterruptsOff()
    {
        var cpu = _vcpus[1].Cpu; // reset state: IF=0
        cpu.Halted = true;
        _checker.Exit(1, new VmExit(ExitReason.Hlt, InstructionsRetired: 1), FastpathResult.None, forced: false);
        cpu.Halted = false;
        _checker.Injected(1, new EventInjection(2, EventType.Nmi), reinjected: false);
        Entry(1);
        Assert.Empty(_checker.Violations);

        cpu.Halted = true;
        _checker.Exit(1, new VmExit(ExitReason.Hlt, InstructionsRetired: 1), FastpathResult.None, forced: false);
        cpu.Halted = false;
        Entry(1);
        Assert.Equal("I12", Assert.Single(_checker.Violations).Invariant);
    }

    [Fact(DisplayName = "I12: a HLT with IF=0 that the fastpath re-enters needs its own wake-up; one SIPI does not cover the next HLT")]
    public void FastpathHaltWithInterruptsOff()
    {
        var cpu = _vcpus[1].Cpu; // reset state: IF=0
        var hlt = new VmExit(ExitReason.Hlt, InstructionsRetired: 1);

        // handle_fastpath_hlt saw the SIPI (Halted already cleared), E10 left for the run loop,
        // which dropped it (the AP is RUNNABLE): one HLT ended by one SIPI.
        _checker.Exit(1, hlt, FastpathResult.ReenterGuest, forced: false);
        _checker.ApicEventsAccepted(1, new ApicEventsTaken(VcpuShared.ApicSipi, 7, MpState.Runnable, MpState.Runnable, cpu.Seg[(int)SegReg.CS].Selector, cpu.Rip));
        Entry(1);
        Assert.Empty(_checker.Violations);

        // The next HLT re-entered straight from E10, nothing accepted or injected in between.
        _checker.Exit(1, hlt, FastpathResult.ReenterGuest, forced: false);
        Entry(1, reentry: true);
        Assert.Equal("I12", Assert.Single(_checker.Violations).Invariant);
        Assert.Equal(2, _checker.Coverage.HaltsWithInterruptsOff);
    }

    [Fact(DisplayName = "I12: a HLT with IF=1 may be left for a fixed IRQ")]
    public void HaltWithInterruptsOn()
    {
        var cpu = _vcpus[1].Cpu;
        cpu.SetSomeFlags(Rflags.IF, Rflags.IF);
        cpu.Halted = true;
        _checker.Exit(1, new VmExit(ExitReason.Hlt, InstructionsRetired: 1), FastpathResult.None, forced: false);
        cpu.Halted = false;
        Entry(1);
        Assert.Empty(_checker.Violations);
    }

    // ---- I13 ------------------------------------------------------------------------------------

    private static InterruptMessage SelfIpi(int source) =>
        new(0x41, DeliveryMode.Fixed, false, false, true, Shorthand.Self, (uint)source, source, true);

    [Fact(DisplayName = "I13: a self-IPI accepted once by its sender is clean; by another vCPU, twice, or never is not")]
    public void SelfIpiOnlyToSenderOnce()
    {
        _checker.IpiSent(0, SelfIpi(0));
        _checker.IpiAccepted(0, SelfIpi(0));
        _checker.Finish();
        Assert.Empty(_checker.Violations);

        _checker.IpiSent(0, SelfIpi(0));
        _checker.IpiAccepted(1, SelfIpi(0)); // misrouted
        _checker.IpiAccepted(0, SelfIpi(0));
        _checker.IpiAccepted(0, SelfIpi(0)); // twice
        _checker.IpiSent(1, SelfIpi(1)); // never accepted
        _checker.Finish();
        Assert.Equal(["I13", "I13", "I13", "I13"], Found);
        Assert.Equal(1, _checker.Violations[0].Vcpu);
        Assert.Contains("accepted 3 times for 2 sent", _checker.Violations[1].Detail, StringComparison.Ordinal);
        Assert.Contains("2 self-IPIs sent, 3 accepted", _checker.Violations[2].Detail, StringComparison.Ordinal);
        Assert.Equal((1, "1 self-IPIs sent, 0 accepted by the sender's LAPIC"), (_checker.Violations[3].Vcpu, _checker.Violations[3].Detail));
    }

    // ---- I14 ------------------------------------------------------------------------------------

    private static ApicEventsTaken Taken(int events, MpState before, MpState after, byte vector = 7, ushort cs = 0x1000, ulong rip = 0x20) =>
        new(events, vector, before, after, cs, rip);

    private void StartAt(int vcpu, ushort cs, ulong rip)
    {
        _vcpus[vcpu].Cpu.Seg[(int)SegReg.CS] = Segment.Real(cs, 0x9B);
        _vcpus[vcpu].Cpu.Rip = rip;
    }

    [Fact(DisplayName = "I14: INIT, then SIPI, then the AP enters at the SIPI vector: clean")]
    public void InitSipiBoot()
    {
        _checker.ApicEventsAccepted(1, Taken(VcpuShared.ApicInit, MpState.Runnable, MpState.InitReceived));
        StartAt(1, 0x700, 0);
        _checker.ApicEventsAccepted(1, Taken(VcpuShared.ApicSipi, MpState.InitReceived, MpState.Runnable));
        Entry(1);
        StartAt(1, 0x1000, 0x20);
        _checker.ApicEventsAccepted(1, Taken(VcpuShared.ApicSipi, MpState.Halted, MpState.Halted)); // dropped
        Assert.Empty(_checker.Violations);
    }

    [Fact(DisplayName = "I14: an AP that enters in INIT_RECEIVED is reported")]
    public void EntryBeforeSipi()
    {
        _checker.ApicEventsAccepted(1, Taken(VcpuShared.ApicInit, MpState.Runnable, MpState.InitReceived));
        Entry(1);
        Assert.Equal("I14", Assert.Single(_checker.Violations).Invariant);
    }

    [Fact(DisplayName = "I14: a SIPI to a running AP that restarts it is reported")]
    public void SipiWhileRunnable()
    {
        StartAt(1, 0x700, 0);
        _checker.ApicEventsAccepted(1, Taken(VcpuShared.ApicSipi, MpState.Runnable, MpState.Runnable));
        Assert.Contains(_checker.Violations, v => v.Invariant == "I14" && v.Detail.Contains("not dropped", StringComparison.Ordinal));
    }

    [Fact(DisplayName = "I14: an INIT that leaves a pending SIPI behind is reported; one that replaces it is not")]
    public void InitOverridesSipi()
    {
        var shared = _vcpus[1].Shared;
        shared.PostSipi(7);
        shared.PostInit();
        _checker.ApicEventPosted(1, init: true, sipiWasPending: true);
        Assert.Empty(_checker.Violations);
        Assert.Equal(1, _checker.Coverage.SipisOverridden);
        shared.PostSipi(9); // a LAPIC that ORs INIT in instead of replacing
        _checker.ApicEventPosted(1, init: true, sipiWasPending: true);
        Assert.Equal("I14", Assert.Single(_checker.Violations).Invariant);
    }

    [Fact(DisplayName = "I14: INIT with the SIPI taken together must start the AP at the vector")]
    public void InitAndSipiTogether()
    {
        StartAt(1, 0x800, 0);
        _checker.ApicEventsAccepted(1, Taken(VcpuShared.ApicInit | VcpuShared.ApicSipi, MpState.Halted, MpState.Runnable, vector: 8));
        Assert.Empty(_checker.Violations);
        _checker.ApicEventsAccepted(1, Taken(VcpuShared.ApicInit | VcpuShared.ApicSipi, MpState.Halted, MpState.InitReceived, vector: 8));
        Assert.Equal("I14", Assert.Single(_checker.Violations).Invariant);
    }
}
