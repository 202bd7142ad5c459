using ActorVm.Actors.Lapic;
using ActorVm.Actors.Logging;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using static ActorVm.Actors.Lapic.LapicProtocol;

namespace ActorVm.Actors.Tests.Lapic;

/// <summary>The LapicActor alone: acceptance order (state, request, kick), acknowledge, EOI, ICR sends.</summary>
public sealed class LapicActorSpec : TestKit
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // a wait, not a time assertion: generous for a loaded CI host

    public LapicActorSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    private (VcpuContext Ctx, IActorRef Lapic, TestProbe Bus, TraceSink Trace) Create(bool enable = true)
    {
        var clock = new ManualTscClock();
        var machine = new Machine(new MachineConfig(1, 4), clock);
        var sink = new TraceSink();
        var ctx = new VcpuContext(machine, 0, new VmOptions(), new Tracepoints(TraceEvents.All, sink.Logger(), clock));
        var bus = CreateTestProbe();
        var timer = new HostTimer(clock);
        var lapic = Sys.ActorOf(LapicActor.Props(ctx, bus.Ref, timer));
        if (enable)
        {
            lapic.Tell(new WriteMsr(Msr.ApicBase, 0xFEE00000UL | (1 << 11) | (1 << 10) | (1 << 8)));
            Assert.False(ExpectMsg<RegisterAccessed>(Bound).Fault);
            lapic.Tell(new WriteMsr(0x80F, 0x1FF));
            Assert.False(ExpectMsg<RegisterAccessed>(Bound).Fault);
        }

        return (ctx, lapic, bus, sink);
    }

    private static InterruptMessage Fixed(byte vector) =>
        new(vector, DeliveryMode.Fixed, Logical: false, Level: false, Assert: true, Shorthand.None, 0, SourceVcpu: -1, X2ApicFormat: true);

    [Fact(DisplayName = "__apic_accept_irq: IRR published, then EVENT, then the kick moves a running vCPU IN→EXITING")]
    public void AcceptPublishesRequestsAndKicks()
    {
        var (ctx, lapic, _, trace) = Create();
        ctx.Shared.ClearRequest(KvmRequest.Event);
        ctx.Shared.Mode.Set(ModeWord.InGuestMode);
        lapic.Tell(new AcceptInterrupt(Fixed(0x40), MatchDestination: true));

        AwaitCondition(() => ctx.Shared.Mode.Read() == ModeWord.ExitingGuestMode, Bound);
        Assert.Equal(0x40, ctx.Shared.HighestDeliverable);
        Assert.True(ctx.Shared.TestRequest(KvmRequest.Event));
        Assert.Contains(trace.Lines, l => l.EndsWith("kvm_apic_accept_irq: apicid 0 vec 64 (Fixed|edge)", StringComparison.Ordinal));
    }

    [Fact(DisplayName = "A software-disabled APIC drops a fixed IRQ: no IRR, no request, no kick")]
    public void DisabledApicDropsFixed()
    {
        var (ctx, lapic, _, _) = Create(enable: false);
        ctx.Shared.Mode.Set(ModeWord.InGuestMode);
        lapic.Tell(new AcceptInterrupt(Fixed(0x40), MatchDestination: true));
        lapic.Tell(new ReadMmio(ApicReg.Ppr, 4)); // a round trip to know the IPI was processed
        ExpectMsg<RegisterAccessed>(Bound);

        Assert.Equal(-1, ctx.Shared.HighestDeliverable);
        Assert.False(ctx.Shared.TestRequest(KvmRequest.Event));
        Assert.Equal(ModeWord.InGuestMode, ctx.Shared.Mode.Read());
    }

    [Fact(DisplayName = "Acknowledge moves IRR→ISR (highest first, PPR respected); EOI re-opens the lower vector and traces kvm_eoi")]
    public void AcknowledgeAndEoi()
    {
        var (ctx, lapic, _, trace) = Create();
        lapic.Tell(new AcceptInterrupt(Fixed(0x41), true));
        lapic.Tell(new AcceptInterrupt(Fixed(0x61), true));
        lapic.Tell(AcknowledgeInterrupt.Instance);
        Assert.Equal(new InterruptAcknowledged(0x61, -1), ExpectMsg<InterruptAcknowledged>(Bound));
        Assert.Equal(-1, ctx.Shared.HighestDeliverable); // 0x41 is below PPR (0x60)

        ctx.Shared.ClearRequest(KvmRequest.Event);
        lapic.Tell(new WriteMsr(0x80B, 0));
        Assert.False(ExpectMsg<RegisterAccessed>(Bound).Fault);
        Assert.Equal(0x41, ctx.Shared.HighestDeliverable);
        Assert.True(ctx.Shared.TestRequest(KvmRequest.Event));
        Assert.Contains(trace.Lines, l => l.EndsWith("kvm_eoi: apicid 0 vector 97", StringComparison.Ordinal));
    }

    [Fact(DisplayName = "An x2APIC ICR write goes to the APIC bus and traces kvm_apic_ipi; NMI and INIT/SIPI go to shared state")]
    public void IcrAndNonVectoredEvents()
    {
        var (ctx, lapic, bus, trace) = Create();
        lapic.Tell(new WriteMsr(0x830, (3UL << 32) | 0x4444, Reply: false));
        var ipi = bus.ExpectMsg<VmProtocol.SendIpi>(Bound).Message;
        Assert.Equal((0x44, DeliveryMode.Nmi, 3u, 0), (ipi.Vector, ipi.Mode, ipi.Destination, ipi.SourceVcpu));
        Assert.Contains(trace.Lines, l => l.EndsWith("kvm_apic_ipi: dst 3 vec 68 (NMI|physical|assert|edge|dst)", StringComparison.Ordinal));

        lapic.Tell(new AcceptInterrupt(ipi with { Destination = 0 }, true));
        AwaitCondition(() => ctx.Shared.NmiQueued == 1 && ctx.Shared.TestRequest(KvmRequest.Nmi), Bound);
    }

    [Fact(DisplayName = "An ICR value posted by the vCPU's fastpath is stored before the next message: RDMSR 0x830 reads it, and nothing is sent again")]
    public void PostedIcrIsStoredFirst()
    {
        var (ctx, lapic, bus, _) = Create();
        ctx.Shared.PostIcr((5UL << 32) | 0x4041);
        lapic.Tell(new ReadMsr(0x830));
        Assert.Equal((5UL << 32) | 0x4041, ExpectMsg<RegisterAccessed>(Bound).Value);
        Assert.False(ctx.Shared.TakePostedIcr(out _));
        bus.ExpectNoMsg(TimeSpan.FromMilliseconds(20));

        // A later synchronous write replaces it in order.
        ctx.Shared.PostIcr((6UL << 32) | 0x4042);
        lapic.Tell(new WriteMsr(0x830, (7UL << 32) | 0x4043));
        ExpectMsg<RegisterAccessed>(Bound);
        Assert.Equal(7u, bus.ExpectMsg<VmProtocol.SendIpi>(Bound).Message.Destination);
        lapic.Tell(new ReadMsr(0x830));
        Assert.Equal((7UL << 32) | 0x4043, ExpectMsg<RegisterAccessed>(Bound).Value);
    }
}
