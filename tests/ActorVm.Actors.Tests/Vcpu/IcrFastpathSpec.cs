using ActorVm.Actors.Lapic;
using ActorVm.Actors.Logging;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Iced.Intel;
using static ActorVm.Actors.Vcpu.VcpuProtocol;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.Vcpu;

/// <summary>
/// The x2APIC ICR fastpath with the APIC bus attached, and the inner loop's inline re-entries:
/// vCPU 0 of a 4-vCPU machine runs alone; probes play every vCPU's LAPIC actor and the run loop.
/// </summary>
public sealed class IcrFastpathSpec : TestKit
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // a wait, not a time assertion: generous for a loaded CI host
    private const int Vcpus = 4;

    public IcrFastpathSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    private sealed record Rig(VcpuContext Ctx, IActorRef Vcpu, TestProbe[] Lapics, TestProbe RunLoop, TraceSink Trace)
    {
        public VcpuShared Shared => Ctx.Shared;

        public VcpuStatistics Stats => Ctx.Counters.Snapshot(0);
    }

    /// <summary>A still clock that counts its reads: how often an entry consults the guest TSC.</summary>
    private sealed class CountingTscClock : ITscClock
    {
        private long _reads;

        public ulong Frequency => 1_000_000_000;

        public long Reads => Volatile.Read(ref _reads);

        public ulong ReadTsc()
        {
            Interlocked.Increment(ref _reads);
            return 1_000;
        }
    }

    private Rig Create(Action<Assembler> program, VmOptions? options = null, ITscClock? guestClock = null)
    {
        var clock = new ManualTscClock();
        var machine = new Machine(new MachineConfig(Vcpus, 4), guestClock ?? clock);
        TestGuest.LoadReal(machine, 0, program);
        machine.Cpus[0].ApicBase |= MsrApicBase.X2Apic;
        var sink = new TraceSink();
        options ??= new VmOptions();
        var trace = new Tracepoints(TraceEvents.All, sink.Logger(), clock);
        var contexts = Enumerable.Range(0, Vcpus).Select(i => new VcpuContext(machine, i, options, trace)).ToArray();
        var lapics = Enumerable.Range(0, Vcpus).Select(_ => CreateTestProbe()).ToArray();
        var bus = new ApicBus(contexts, lapics.Select(p => p.Ref).ToArray());
        contexts[0].Bus = bus;
        var vcpu = Sys.ActorOf(VcpuActor.Props(contexts[0], lapics[0].Ref).WithDispatcher(VmActor.VcpuDispatcherId));
        return new Rig(contexts[0], vcpu, lapics, CreateTestProbe(), sink);
    }

    private static Run Plain => new(RunFlags.None, null, false, false);

    [Theory(DisplayName = "ICR that cannot reach the sender: posted, traced, sent on the bus to the target only, re-entered without waiting for the LAPIC")]
    [InlineData(0x0000_0002_0000_4041UL, 2, true)]     // physical, fixed, APIC 2
    [InlineData(0x0000_0000_000C_4042UL, -1, false)]   // all excluding self: 1, 2, 3
    [InlineData(0x0000_0000_0000_4500UL | (3UL << 32), 3, true)] // INIT to APIC 3 (not fixed: not counted as an IPI)
    [InlineData(0x0001_0001_0000_4843UL, -1, true)]    // logical, cluster 1 (APICs 16-31): offered to every other LAPIC
    public void DirectSend(ulong icr, int target, bool match)
    {
        var rig = Create(a => { a.Wrmsr(0x830, icr); a.@out(0x80, al); a.hlt(); });
        rig.RunLoop.Send(rig.Vcpu, Plain);

        // The OUT after the WRMSR exits although no LAPIC ever replied: the inner loop did not wait.
        var io = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal(ExitReason.IoInstruction, io.Exit.Reason);
        Assert.Equal(1, rig.Stats.FastpathByHandler[nameof(FastpathHandler.X2ApicIcr)][nameof(FastpathResult.ReenterGuest)]);
        Assert.True(rig.Shared.TakePostedIcr(out var posted));
        Assert.Equal(icr, posted);

        var expected = target == -1 ? new[] { 1, 2, 3 } : [target];
        foreach (var i in Enumerable.Range(0, Vcpus))
        {
            if (expected.Contains(i))
            {
                var accept = rig.Lapics[i].ExpectMsg<LapicProtocol.AcceptInterrupt>(Bound);
                Assert.Equal((byte)icr, accept.Message.Vector);
                Assert.Equal(0, accept.Message.SourceVcpu);
                Assert.Equal(match, accept.MatchDestination);
            }
        }

        foreach (var probe in rig.Lapics)
        {
            probe.ExpectNoMsg(TimeSpan.FromMilliseconds(20)); // nothing to the sender's LAPIC, nothing twice
        }

        var fixedMode = ((icr >> 8) & 7) == 0;
        Assert.Equal(fixedMode ? 1 : 0, rig.Stats.IpisSent);
        Assert.Contains(rig.Trace.Lines, l => l.Contains(" kvm_apic_ipi: ", StringComparison.Ordinal));
    }

    [Theory(DisplayName = "ICR that may reach the sender (self, broadcast, own logical cluster bit, all-including-self, illegal vector): the LAPIC applies it and the inner loop waits for its reply")]
    [InlineData(0x0000_0000_0000_4041UL)]             // physical APIC 0 = self
    [InlineData(0xFFFF_FFFF_0000_4041UL)]             // physical broadcast
    [InlineData(0x0000_0001_0000_4841UL)]             // logical cluster 0, bit 0 = self
    [InlineData(0x0000_0000_0008_4041UL)]             // all including self
    [InlineData(0x0000_0000_0004_4041UL)]             // self
    [InlineData(0x0000_0002_0000_4005UL)]             // vector 5 to APIC 2: the sender's ESR logs it
    public void SynchronousWhenLocal(ulong icr)
    {
        var rig = Create(a => { a.Wrmsr(0x830, icr); a.@out(0x80, al); a.hlt(); });
        rig.RunLoop.Send(rig.Vcpu, Plain);
        var write = rig.Lapics[0].ExpectMsg<LapicProtocol.WriteMsr>(Bound);
        Assert.Equal((0x830u, icr), (write.Index, write.Value));
        rig.RunLoop.ExpectNoMsg(TimeSpan.FromMilliseconds(50)); // waits for the LAPIC
        Assert.Equal(ModeWord.InGuestMode, rig.Shared.Mode.Read());
        Assert.False(rig.Shared.TakePostedIcr(out _));
        rig.Lapics[0].Reply(new LapicProtocol.RegisterAccessed(0, false));
        Assert.Equal(ExitReason.IoInstruction, rig.RunLoop.ExpectMsg<VcpuExited>(Bound).Exit.Reason);
        foreach (var probe in rig.Lapics.Skip(1))
        {
            probe.ExpectNoMsg(TimeSpan.FromMilliseconds(10)); // the sender's LAPIC sends, not the vCPU
        }
    }

    [Fact(DisplayName = "Inline re-entries: thousands of fastpath exits run across several actor turns, and a request + kick still ends the inner loop (I1, I2)")]
    public void InlineReentriesAreBoundedAndKickable()
    {
        var rig = Create(a =>
        {
            var top = a.CreateLabel();
            a.Label(ref top);
            a.Wrmsr(0x830, 0x0000_0002_0000_4041UL); // to APIC 2, another vCPU
            a.jmp(top);
        }, new VmOptions { SliceInstructions = long.MaxValue });
        rig.RunLoop.Send(rig.Vcpu, Plain);
        AwaitCondition(() => rig.Stats.Entries > 4 * VcpuActor.MaxInlineReentries, Bound);
        rig.RunLoop.ExpectNoMsg(TimeSpan.FromMilliseconds(20));

        rig.Shared.MakeRequest(KvmRequest.ClockUpdate);
        rig.Shared.Kick();
        var exit = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);

        // Either the E10 re-check after a fastpath saw the request (EXIT_HANDLED), or the kick
        // reached the slice itself (the host IPI: EXTERNAL_INTERRUPT, no fastpath); which one
        // depends on where the slice was when the kick landed.
        Assert.True(
            exit.Fastpath == FastpathResult.ExitHandled
                || (exit.Fastpath == FastpathResult.None && exit.Exit.Reason == ExitReason.ExternalInterrupt),
            $"exit {exit.Exit.Reason} with fastpath {exit.Fastpath}");
        Assert.Equal(ModeWord.OutsideGuestMode, rig.Shared.Mode.Read());
        var entries = rig.Stats.Entries;
        var reentered = rig.Stats.FastpathByHandler[nameof(FastpathHandler.X2ApicIcr)][nameof(FastpathResult.ReenterGuest)];
        Assert.True(reentered >= entries - 1, $"{reentered} fastpath re-entries for {entries} entries");
        Thread.Sleep(20);
        Assert.Equal(entries, rig.Stats.Entries); // stopped: no entry after the exit
        rig.Lapics[0].ExpectNoMsg(TimeSpan.FromMilliseconds(10)); // the sender's LAPIC never had to apply a write
    }

    [Fact(DisplayName = "A soft-disabled re-entry keeps the turn's deadline (vmx_update_hv_timer) and its short slice skips the first deadline check: one TSC read per turn, not two per re-entry")]
    public void SoftDisabledReentryReadsTheClockOnce()
    {
        const int writes = 20;
        var clock = new CountingTscClock();
        var rig = Create(a =>
        {
            for (var i = 0; i < writes; i++)
            {
                a.Wrmsr(0x830, 0x0000_0002_0000_4041UL);
            }

            a.@out(0x80, al);
            a.hlt();
        }, guestClock: clock);
        rig.RunLoop.Send(rig.Vcpu, Plain);

        var io = rig.RunLoop.ExpectMsg<VcpuExited>(Bound);
        Assert.Equal(ExitReason.IoInstruction, io.Exit.Reason);
        Assert.Equal(writes, rig.Stats.FastpathByHandler[nameof(FastpathHandler.X2ApicIcr)][nameof(FastpathResult.ReenterGuest)]);
        Assert.Equal(writes + 1, rig.Stats.Entries);

        // Only the turn's first entry reads the clock: to program the soft-disabled span and at its
        // slice's first deadline check. The re-entries keep that deadline, known not to be due, and
        // check it first after Cpu.DeadlineCheckInterval instructions, more than any slice here
        // runs (before 2d0d0c4: two reads per entry; then one, the slice's first check).
        Assert.Equal(2, clock.Reads);
    }
}
