using ActorVm.Actors.Lapic;
using ActorVm.Actors.Logging;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Iced.Intel;
using static ActorVm.Actors.Vcpu.VcpuProtocol;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.Vcpu;

/// <summary>
/// The vendor layer alone: a probe plays the run loop (sends Run, receives the exit) and another
/// the LAPIC. Virtual time through ManualTscClock.
/// </summary>
public sealed class VcpuActorSpec : TestKit
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // a wait, not a time assertion: generous for a loaded CI host

    public VcpuActorSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    private sealed record Rig(Machine Machine, VcpuContext Ctx, IActorRef Vcpu, TestProbe Lapic, TestProbe RunLoop, ManualTscClock Clock, TraceSink Trace)
    {
        public Cpu Cpu => Ctx.Cpu;

        public VcpuShared Shared => Ctx.Shared;

        public VcpuStatistics Stats => Ctx.Counters.Snapshot(0);
    }

    private Rig Create(Action<Assembler> program, VmOptions? options = null)
    {
        var clock = new ManualTscClock();
        var machine = new Machine(new MachineConfig(1, 4), clock);
        TestGuest.LoadReal(machine, 0, program);
        var sink = new TraceSink();
        options ??= new VmOptions();
        var ctx = new VcpuContext(machine, 0, options, new Tracepoints(TraceEvents.All, sink.Logger(), clock));
        var lapic = CreateTestProbe();
        var vcpu = Sys.ActorOf(VcpuActor.Props(ctx, lapic.Ref).WithDispatcher(VmActor.VcpuDispatcherId));
        return new Rig(machine, ctx, vcpu, lapic, CreateTestProbe(), clock, sink);
    }

    private static void Adds(Assembler a, int n)
    {
        for (var i = 0; i < n; i++)
        {
            a.add(ax, 1);
        }
    }

    private static void Spin(Assembler a)
    {
        var l = a.CreateLabel();
        a.Label(ref l);
        a.add(ax, 1);
        a.jmp(l);
    }

    private static Run Forced => new(RunFlags.ForceImmediateExit, null, false, false);

    private static Run Plain => new(RunFlags.None, null, false, false);

    /// <summary>Waits until the vCPU is inside a guest slice, then runs <paramref name="action"/>.</summary>
    private static void WhenInGuest(Rig rig, Action action)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (rig.Shared.Mode.Read() != ModeWord.InGuestMode || rig.Cpu.InstructionsRetired == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "vCPU never entered the guest");
            Thread.Sleep(1);
        }

        action();
    }

    [Fact(DisplayName = "I5/I6: a forced entry with the preemption timer retires 0 instructions, exits 52, fastpath EXIT_HANDLED, EVENT pending")]
    public void ForcedEntryPreemptionTimer()
    {
        var rig = Create(a => Adds(a, 100));
        rig.RunLoop.Send(rig.Vcpu, Forced);
        var exit = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);

        Assert.Equal(ExitReason.PreemptionTimer, exit.Exit.Reason);
        Assert.Equal(FastpathResult.ExitHandled, exit.Fastpath);
        Assert.True(exit.Forced);
        Assert.Equal(0, exit.Exit.InstructionsRetired);
        Assert.Equal(TestGuest.CodeBase, rig.Cpu.Rip);
        Assert.True(rig.Shared.TestRequest(KvmRequest.Event), "E8 must make KVM_REQ_EVENT for a forced entry");
        Assert.Equal(ModeWord.OutsideGuestMode, rig.Shared.Mode.Read());
        var forced = rig.Stats.ForcedEntries[nameof(ImmediateExitMethod.PreemptionTimer)];
        Assert.Equal(1, forced.Count);
        Assert.Equal(1, forced.LeakHistogram[0]);
        Assert.Equal(1, rig.Stats.FastpathByHandler[nameof(FastpathHandler.PreemptionTimer)][nameof(FastpathResult.ExitHandled)]);
        Assert.Equal(1, rig.Stats.Entries);
        Assert.Equal(0, rig.Stats.Warnings.SecondForcedEntryInInnerLoop);
    }

    [Fact(DisplayName = "I9: kvm_entry carries [immediate exit] iff the entry is forced")]
    public void ImmediateExitSuffixIffForced()
    {
        var rig = Create(a => { a.hlt(); Adds(a, 4); a.hlt(); });
        rig.RunLoop.Send(rig.Vcpu, Plain);
        var first = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal(ExitReason.Hlt, first.Exit.Reason);
        rig.Cpu.Halted = false;
        rig.RunLoop.Send(rig.Vcpu, Forced);
        rig.RunLoop.ExpectMsg<VcpuExited>(Bound);

        var entries = rig.Trace.Lines.Where(l => l.Contains(" kvm_entry: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, entries.Count);
        Assert.Matches(@"^\d+\.\d{6} kvm_entry: vcpu 0, rip 0x1000$", entries[0]);
        Assert.Matches(@"^\d+\.\d{6} kvm_entry: vcpu 0, rip 0x1001\[immediate exit\]$", entries[1]);
        Assert.Contains(rig.Trace.Lines, l => l.EndsWith("kvm_exit: vcpu 0 reason PREEMPTION_TIMER rip 0x1001 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000", StringComparison.Ordinal));
    }

    [Fact(DisplayName = "I2: E7 refuses the entry while a request is pending; nothing retires, mode back to OUTSIDE")]
    public void EntryRefusedWithRequestPending()
    {
        var rig = Create(a => Adds(a, 10));
        rig.Shared.MakeRequest(KvmRequest.TlbFlush);
        rig.RunLoop.Send(rig.Vcpu, Forced);

        var cancelled = rig.RunLoop.ExpectMsg<EntryCancelled>(Bound);
        Assert.True(cancelled.Forced);
        Assert.Equal(0, rig.Cpu.InstructionsRetired);
        Assert.Equal(ModeWord.OutsideGuestMode, rig.Shared.Mode.Read());
        Assert.False(rig.Shared.TestRequest(KvmRequest.Event), "a cancelled entry never reached E8");
        Assert.True(rig.Shared.TestRequest(KvmRequest.TlbFlush), "the vendor layer never consumes requests");
        Assert.Equal(0, rig.Stats.Entries);
        Assert.Equal(1, rig.Stats.EntriesCancelled);
    }

    [Fact(DisplayName = "I3: while the vCPU runs, a foreign kick only moves IN→EXITING; the owner sets OUTSIDE at E11")]
    public void KickEndsTheSliceAndOwnerLeaves()
    {
        var rig = Create(Spin, new VmOptions { SliceInstructions = long.MaxValue });
        rig.RunLoop.Send(rig.Vcpu, Plain);
        WhenInGuest(rig, () =>
        {
            rig.Shared.MakeRequest(KvmRequest.ClockUpdate);
            Assert.Equal(ModeWord.InGuestMode, rig.Shared.Mode.TryExit());
        });

        var exit = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal(ExitReason.ExternalInterrupt, exit.Exit.Reason);
        Assert.Equal(FastpathResult.None, exit.Fastpath);
        Assert.Equal(ModeWord.OutsideGuestMode, rig.Shared.Mode.Read());
        // A kick of a vCPU outside guest mode changes nothing (CAS IN→EXITING fails).
        Assert.Equal(ModeWord.OutsideGuestMode, rig.Shared.Mode.TryExit());
        Assert.Equal(ModeWord.OutsideGuestMode, rig.Shared.Mode.Read());
    }

    [Fact(DisplayName = "Preemption-timer fastpath rule 1: a soft-disabled timer's expiry is spurious → REENTER_GUEST")]
    public void SoftDisabledExpiryReenters()
    {
        var rig = Create(Spin, new VmOptions { SliceInstructions = long.MaxValue });
        rig.RunLoop.Send(rig.Vcpu, Plain);
        WhenInGuest(rig, () => rig.Clock.Advance(VcpuActor.SoftDisabledSpan + 1));
        AwaitCondition(() => rig.Stats.FastpathByHandler.ContainsKey(nameof(FastpathHandler.PreemptionTimer)), Bound);
        rig.RunLoop.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        rig.Shared.MakeRequest(KvmRequest.ClockUpdate);
        rig.Shared.Kick();
        var exit = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.NotEqual(ExitReason.PreemptionTimer, exit.Exit.Reason);
        Assert.Equal(1, rig.Stats.FastpathByHandler[nameof(FastpathHandler.PreemptionTimer)][nameof(FastpathResult.ReenterGuest)]);
        Assert.True(rig.Stats.Entries >= 2, "the fastpath re-entered the guest");
        rig.Lapic.ExpectNoMsg(TimeSpan.FromMilliseconds(20));
    }

    [Fact(DisplayName = "Preemption-timer fastpath rule 4: an hv-timer expiry goes to the LAPIC and re-enters")]
    public void HvTimerExpiryReenters()
    {
        var rig = Create(Spin, new VmOptions { SliceInstructions = long.MaxValue });
        rig.Shared.HvDeadline = 5_000;
        rig.RunLoop.Send(rig.Vcpu, Plain);
        WhenInGuest(rig, () => rig.Clock.Advance(10_000));

        var expired = rig.Lapic.ExpectMsg<LapicProtocol.HvTimerExpired>(Bound);
        Assert.Equal(5_000UL, expired.Deadline);
        Assert.Equal(VcpuShared.NoDeadline, rig.Shared.HvDeadline);
        rig.RunLoop.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        Assert.Equal(1, rig.Stats.FastpathByHandler[nameof(FastpathHandler.PreemptionTimer)][nameof(FastpathResult.ReenterGuest)]);

        rig.Shared.MakeRequest(KvmRequest.ClockUpdate);
        rig.Shared.Kick();
        rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
    }

    [Fact(DisplayName = "hv timer armed while a slice runs: the running slice adopts the published deadline and expires it through the fastpath")]
    public void DeadlinePublishedDuringSliceExpiresInThatSlice()
    {
        // The entry sees no hv deadline (soft-disabled); the LAPIC publishes one afterwards. Before
        // the slice polled the published word, the deadline took effect only at the next entry,
        // which with an unbounded slice never comes.
        var rig = Create(Spin, new VmOptions { SliceInstructions = long.MaxValue });
        rig.RunLoop.Send(rig.Vcpu, Plain);
        WhenInGuest(rig, () =>
        {
            Assert.True(rig.Shared.Mode.Read() == ModeWord.InGuestMode);
            rig.Shared.HvDeadline = 5_000;
            rig.Clock.Advance(10_000);
        });

        var expired = rig.Lapic.ExpectMsg<LapicProtocol.HvTimerExpired>(Bound);
        Assert.Equal(5_000UL, expired.Deadline);
        Assert.Equal(VcpuShared.NoDeadline, rig.Shared.HvDeadline);
        Assert.Equal(1, rig.Stats.FastpathByHandler[nameof(FastpathHandler.PreemptionTimer)][nameof(FastpathResult.ReenterGuest)]);
        Assert.True(rig.Stats.Entries >= 2, "the fastpath re-entered the guest");
        rig.RunLoop.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        rig.Shared.MakeRequest(KvmRequest.ClockUpdate);
        rig.Shared.Kick();
        rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
    }

    [Fact(DisplayName = "hv timer re-armed while a slice runs: the newer deadline replaces the programmed one, the old one does not fire")]
    public void RepublishedDeadlineReplacesTheProgrammedOne()
    {
        var rig = Create(Spin, new VmOptions { SliceInstructions = long.MaxValue });
        rig.Shared.HvDeadline = 5_000;
        rig.RunLoop.Send(rig.Vcpu, Plain);
        WhenInGuest(rig, () =>
        {
            rig.Shared.HvDeadline = 50_000;
            rig.Clock.Advance(10_000);
        });

        rig.Lapic.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        Assert.Equal(50_000UL, rig.Shared.HvDeadline);
        rig.Clock.Advance(50_000);
        var expired = rig.Lapic.ExpectMsg<LapicProtocol.HvTimerExpired>(Bound);
        Assert.Equal(50_000UL, expired.Deadline);

        rig.Shared.MakeRequest(KvmRequest.ClockUpdate);
        rig.Shared.Kick();
        rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
    }

    [Fact(DisplayName = "Preemption-timer fastpath rules 2-3: forced → EXIT_HANDLED even in L2; unforced in L2 → NONE (slowpath)")]
    public void L2Rules()
    {
        var rig = Create(Spin, new VmOptions { SliceInstructions = long.MaxValue });
        rig.Shared.L2Active = true;
        rig.RunLoop.Send(rig.Vcpu, Forced);
        var forced = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.PreemptionTimer, FastpathResult.ExitHandled), (forced.Exit.Reason, forced.Fastpath));

        rig.Shared.CheckRequest(KvmRequest.Event);
        rig.Shared.HvDeadline = 5_000;
        rig.RunLoop.Send(rig.Vcpu, Plain);
        WhenInGuest(rig, () => rig.Clock.Advance(10_000));
        var l2 = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.PreemptionTimer, FastpathResult.None), (l2.Exit.Reason, l2.Fastpath));
        rig.Lapic.ExpectNoMsg(TimeSpan.FromMilliseconds(20));
    }

    [Fact(DisplayName = "HLT fastpath: no event → EXIT_HANDLED (halted); an injectable IRQ with IF=1 → REENTER_GUEST")]
    public void HltFastpath()
    {
        var rig = Create(a => { a.hlt(); a.sti(); a.nop(); a.hlt(); a.@out(0x80, al); a.hlt(); });
        rig.RunLoop.Send(rig.Vcpu, Plain);
        var halted = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.Hlt, FastpathResult.ExitHandled), (halted.Exit.Reason, halted.Fastpath));
        Assert.True(rig.Cpu.Halted);
        Assert.Equal(TestGuest.CodeBase + 1UL, rig.Cpu.Rip);

        rig.Cpu.Halted = false;
        rig.Shared.HighestDeliverable = 0x40;
        rig.RunLoop.Send(rig.Vcpu, Plain);
        var io = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.IoInstruction, FastpathResult.None), (io.Exit.Reason, io.Fastpath));
        var hlt = rig.Stats.FastpathByHandler[nameof(FastpathHandler.Hlt)];
        Assert.Equal(1, hlt[nameof(FastpathResult.ExitHandled)]);
        Assert.Equal(1, hlt[nameof(FastpathResult.ReenterGuest)]);
    }

    /// <summary>
    /// The guest of the sipi-race AP: HLT with IF=0, and an OUT right after it that shows whether
    /// the vCPU ran on past the HLT (the storm's guest counts there instead).
    /// </summary>
    private static void HaltThenOut(Assembler a)
    {
        a.cli();
        a.hlt();
        a.@out(0x80, al);
        a.hlt();
    }

    [Theory(DisplayName = "I12: a pending INIT or SIPI whose EVENT is not made yet ends no HLT in the fastpath: the vCPU stays halted for vcpu_block to accept it")]
    [InlineData(true)]
    [InlineData(false)]
    public void PendingInitSipiKeepsHlt(bool init)
    {
        var rig = Create(HaltThenOut);

        // The LAPIC actor between posting the event and making KVM_REQ_EVENT (__apic_accept_irq).
        if (init)
        {
            rig.Shared.PostInit();
        }
        else
        {
            rig.Shared.PostSipi(0x07);
        }

        rig.RunLoop.Send(rig.Vcpu, Plain);
        var exit = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.Hlt, FastpathResult.ExitHandled), (exit.Exit.Reason, exit.Fastpath));
        Assert.True(rig.Cpu.Halted, "the HLT must stay in effect until the run loop accepts the event");
        Assert.Equal(TestGuest.CodeBase + 2UL, rig.Cpu.Rip);
        Assert.Equal(0, rig.Stats.FastpathByHandler[nameof(FastpathHandler.Hlt)].GetValueOrDefault(nameof(FastpathResult.ReenterGuest)));
    }

    [Fact(DisplayName = "I12: a queued NMI whose KVM_REQ_NMI is not made yet ends no HLT in the fastpath (kvm_vcpu_has_events counts the request, not nmi_queued)")]
    public void QueuedNmiWithoutRequestKeepsHlt()
    {
        var rig = Create(HaltThenOut);
        rig.Shared.QueueNmi(); // the sender between atomic_inc(nmi_queued) and kvm_make_request
        rig.RunLoop.Send(rig.Vcpu, Plain);
        var halted = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.Hlt, FastpathResult.ExitHandled), (halted.Exit.Reason, halted.Fastpath));
        Assert.True(rig.Cpu.Halted);
        Assert.Equal(TestGuest.CodeBase + 2UL, rig.Cpu.Rip);
        Assert.Equal(0, rig.Stats.FastpathByHandler[nameof(FastpathHandler.Hlt)].GetValueOrDefault(nameof(FastpathResult.ReenterGuest)));
    }

    [Fact(DisplayName = "MSR_WRITE fastpath: x2APIC ICR in x2APIC mode completes WRMSR, hands it to the LAPIC, re-enters; in xAPIC mode it is slowpath")]
    public void IcrFastpath()
    {
        var rig = Create(a => { a.Wrmsr(0x830, 0x0000_0001_0000_4041); a.@out(0x80, al); a.hlt(); });
        rig.Cpu.ApicBase |= MsrApicBase.X2Apic;
        rig.RunLoop.Send(rig.Vcpu, Plain);
        var write = rig.Lapic.ExpectMsg<LapicProtocol.WriteMsr>(Bound);
        Assert.Equal((0x830u, 0x0000_0001_0000_4041UL), (write.Index, write.Value));
        rig.RunLoop.ExpectNoMsg(TimeSpan.FromMilliseconds(50)); // the inner loop waits for the LAPIC
        Assert.Equal(ModeWord.InGuestMode, rig.Shared.Mode.Read());
        rig.Lapic.Reply(new LapicProtocol.RegisterAccessed(0, false));
        var io = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal(ExitReason.IoInstruction, io.Exit.Reason);
        Assert.Equal(1, rig.Stats.FastpathByHandler[nameof(FastpathHandler.X2ApicIcr)][nameof(FastpathResult.ReenterGuest)]);

        var xapic = Create(a => { a.Wrmsr(0x830, 0x4041); a.hlt(); });
        xapic.RunLoop.Send(xapic.Vcpu, Plain);
        var slow = xapic.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.MsrWrite, FastpathResult.None), (slow.Exit.Reason, slow.Fastpath));
        xapic.Lapic.ExpectNoMsg(TimeSpan.FromMilliseconds(20));
    }

    [Fact(DisplayName = "MSR_WRITE fastpath: an ICR write with reserved bits set is left to the slowpath (#GP there)")]
    public void IcrReservedBitsSlowpath()
    {
        var rig = Create(a => { a.Wrmsr(0x830, 0x0010_4041); a.hlt(); });
        rig.Cpu.ApicBase |= MsrApicBase.X2Apic;
        rig.RunLoop.Send(rig.Vcpu, Plain);
        var slow = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.MsrWrite, FastpathResult.None), (slow.Exit.Reason, slow.Fastpath));
        rig.Lapic.ExpectNoMsg(TimeSpan.FromMilliseconds(20));
    }

    [Fact(DisplayName = "MSR_WRITE fastpath: TSC_DEADLINE with the hv timer; with the sw timer it is slowpath")]
    public void TscDeadlineFastpath()
    {
        var rig = Create(a => { a.Wrmsr(0x6E0, 123_456); a.@out(0x80, al); a.hlt(); });
        rig.RunLoop.Send(rig.Vcpu, Plain);
        var write = rig.Lapic.ExpectMsg<LapicProtocol.WriteMsr>(Bound);
        Assert.Equal((0x6E0u, 123_456UL), (write.Index, write.Value));
        rig.Lapic.Reply(new LapicProtocol.RegisterAccessed(0, false));
        Assert.Equal(ExitReason.IoInstruction, rig.RunLoop.ExpectMsg<VcpuExited>(Bound).Exit.Reason);
        Assert.Equal(1, rig.Stats.FastpathByHandler[nameof(FastpathHandler.TscDeadline)][nameof(FastpathResult.ReenterGuest)]);

        var sw = Create(a => { a.Wrmsr(0x6E0, 123_456); a.hlt(); }, new VmOptions { Timer = TimerBackend.Sw });
        sw.RunLoop.Send(sw.Vcpu, Plain);
        Assert.Equal(ExitReason.MsrWrite, sw.RunLoop.ExpectMsg<VcpuExited>(Bound).Exit.Reason);
    }

    [Fact(DisplayName = "I7: after a forced entry the inner loop never re-enters (EVENT from E8 makes exit_request true)")]
    public void NoSecondForcedEntry()
    {
        // Soft-disabled spurious expiries re-enter; a forced entry must not, even if its exit
        // would otherwise be a REENTER (here: a HLT with an event pending).
        var rig = Create(a => { a.hlt(); Adds(a, 8); a.hlt(); }, new VmOptions { ImmediateExit = ImmediateExitMethod.SelfIpi, SliceInstructions = long.MaxValue });
        rig.Cpu.SetControlFlag(Rflags.IF, true);
        rig.Shared.HighestDeliverable = 0x40;
        rig.RunLoop.Send(rig.Vcpu, Forced);
        var exit = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.NotEqual(FastpathResult.ReenterGuest, exit.Fastpath);
        Assert.Equal(1, rig.Stats.Entries);
        Assert.Equal(0, rig.Stats.Warnings.SecondForcedEntryInInnerLoop);
    }

    [Fact(DisplayName = "Self-IPI method: the forced exit is EXTERNAL_INTERRUPT through the slowpath, and its leak is recorded")]
    public void SelfIpiForcedExit()
    {
        var rig = Create(Spin, new VmOptions { ImmediateExit = ImmediateExitMethod.SelfIpi, SliceInstructions = long.MaxValue });
        rig.RunLoop.Send(rig.Vcpu, Forced);
        var exit = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal((ExitReason.ExternalInterrupt, FastpathResult.None, true), (exit.Exit.Reason, exit.Fastpath, exit.Forced));
        var forced = rig.Stats.ForcedEntries[nameof(ImmediateExitMethod.SelfIpi)];
        Assert.Equal(1, forced.Count);
        Assert.Equal(1, forced.LeakHistogram.Sum());
        Assert.Equal(exit.Exit.InstructionsRetired, rig.Stats.InstructionsRetired);
        Assert.Equal(0, rig.Stats.ForcedEntries[nameof(ImmediateExitMethod.PreemptionTimer)].Count);
    }

    private sealed class EntryRecorder : IRunLoopObserver
    {
        public List<long> EntryRequests { get; } = [];

        public int Cancelled;

        public void Entry(int vcpu, long requestsAtCheck, int modeAtCheck, bool forced, bool reentry) => EntryRequests.Add(requestsAtCheck);

        public void Exit(int vcpu, in VmExit exit, FastpathResult fastpath, bool forced)
        {
        }

        public void EntryCancelled(int vcpu, long requestsAtCheck, int modeAtCheck) => Cancelled++;

        public void RequestServiced(int vcpu, int bit)
        {
        }

        public void Injected(int vcpu, EventInjection injection, bool reinjected)
        {
        }

        public void BlockChanged(int vcpu, bool blocked)
        {
        }
    }

    [Theory(DisplayName = "Checker hook and negative control: with E7 skipped an entry runs with a request pending (I2 violation is observable)")]
    [InlineData(false)]
    [InlineData(true)]
    public void ObserverSeesI2Violation(bool skipRecheck)
    {
        var observer = new EntryRecorder();
        var rig = Create(a => a.hlt(), new VmOptions { Observer = observer, Faults = new FaultInjection(SkipEntryRecheck: skipRecheck) });
        rig.Shared.MakeRequest(KvmRequest.TlbFlush);
        rig.RunLoop.Send(rig.Vcpu, Plain);
        if (skipRecheck)
        {
            rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
            Assert.Equal([1L << KvmRequest.TlbFlush], observer.EntryRequests);
        }
        else
        {
            rig.RunLoop.ExpectMsg<EntryCancelled>(Bound);
            Assert.Empty(observer.EntryRequests);
            Assert.Equal(1, observer.Cancelled);
        }
    }
}
