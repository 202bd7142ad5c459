using ActorVm.Actors.Lapic;
using ActorVm.Actors.Logging;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using static ActorVm.Actors.Lapic.LapicProtocol;

namespace ActorVm.Actors.Tests.Lapic;

/// <summary>
/// Posted interrupts on the APIC bus (spec §8.6): a fixed edge IPI for an x2APIC target is
/// posted by the sender (PIR, EVENT, kick) and merged into IRR by the target's LAPIC actor at its
/// next turn; everything else still goes to the LAPIC actor as a message.
/// </summary>
public sealed class PostedInterruptSpec : TestKit
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // a wait, not a time assertion: generous for a loaded CI host

    public PostedInterruptSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    private (VcpuContext Target, IActorRef Lapic, ApicBus Bus, TraceSink Trace) Create(bool enableTarget)
    {
        var clock = new ManualTscClock();
        var machine = new Machine(new MachineConfig(2, 4), clock);
        var sink = new TraceSink();
        var trace = new Tracepoints(TraceEvents.All, sink.Logger(), clock);
        var contexts = new[] { new VcpuContext(machine, 0, new VmOptions(), trace), new VcpuContext(machine, 1, new VmOptions(), trace) };
        var lapic = Sys.ActorOf(LapicActor.Props(contexts[1], CreateTestProbe().Ref, new HostTimer(clock)));
        var bus = new ApicBus(contexts, [CreateTestProbe().Ref, lapic]);
        contexts[1].Bus = bus;
        lapic.Tell(new WriteMsr(Msr.ApicBase, 0xFEE00000UL | (1 << 11) | (1 << 10)));
        ExpectMsg<RegisterAccessed>(Bound);
        if (enableTarget)
        {
            lapic.Tell(new WriteMsr(0x80F, 0x1FF));
            ExpectMsg<RegisterAccessed>(Bound);
        }

        return (contexts[1], lapic, bus, sink);
    }

    private static InterruptMessage Ipi(byte vector, bool level = false, uint dest = 1) =>
        new(vector, DeliveryMode.Fixed, Logical: false, Level: level, Assert: true, Shorthand.None, dest, SourceVcpu: 0, X2ApicFormat: true);

    [Fact(DisplayName = "A fixed IPI is posted by the sender (accept traced, EVENT, kick) and merged into IRR at the target LAPIC's next turn")]
    public void PostedThenMerged()
    {
        var (target, lapic, bus, trace) = Create(enableTarget: true);
        var shared = target.Shared;
        shared.ClearRequest(KvmRequest.Event);
        shared.Mode.Set(ModeWord.InGuestMode);

        bus.Send(Ipi(0x41), skip: 0);
        Assert.True(shared.PirPending);
        Assert.Equal(0x41, shared.HighestPosted);
        Assert.Equal(-1, shared.HighestDeliverable); // not merged: the LAPIC actor has not run
        Assert.True(shared.InterruptPending);
        Assert.True(shared.TestRequest(KvmRequest.Event));
        Assert.Equal(ModeWord.ExitingGuestMode, shared.Mode.Read()); // kicked by the sender itself
        Assert.Equal(1, target.Counters.Snapshot(1).IpisReceived);
        Assert.Contains(trace.Lines, l => l.EndsWith("kvm_apic_accept_irq: apicid 1 vec 65 (Fixed|edge)", StringComparison.Ordinal));

        lapic.Tell(AcknowledgeInterrupt.Instance);
        var ack = ExpectMsg<InterruptAcknowledged>(Bound);
        Assert.Equal(0x41, ack.Vector); // merged, then acknowledged (IRR → ISR)
        Assert.False(shared.PirPending);
        Assert.Equal(-1, shared.HighestPosted);
        Assert.False(shared.InterruptPending); // 0x41 in service: nothing above PPR
    }

    [Fact(DisplayName = "InterruptPending weighs a posted vector against the published PPR (SDM 11.8.3.1)")]
    public void PostedVectorBelowPprIsNotPending()
    {
        var (target, lapic, bus, _) = Create(enableTarget: true);
        lapic.Tell(new WriteMsr(0x808, 0x60)); // TPR 0x60 → PPR 0x60
        ExpectMsg<RegisterAccessed>(Bound);
        bus.Send(Ipi(0x51), skip: 0);
        Assert.True(target.Shared.PirPending);
        Assert.False(target.Shared.InterruptPending);
        bus.Send(Ipi(0x71), skip: 0);
        Assert.True(target.Shared.InterruptPending);
    }

    [Theory(DisplayName = "Level-triggered IPIs, software-disabled or xAPIC targets and other destinations go to the LAPIC actor as messages")]
    [InlineData(true, false)]  // level-triggered
    [InlineData(false, true)]  // target software-disabled (SVR.EN = 0): the LAPIC drops it
    public void NotPosted(bool level, bool disabled)
    {
        var (target, lapic, bus, _) = Create(enableTarget: !disabled);
        bus.Send(Ipi(0x41, level), skip: 0);
        Assert.False(target.Shared.PirPending);
        lapic.Tell(new ReadMsr(0x802)); // a turn after the accept
        ExpectMsg<RegisterAccessed>(Bound);
        Assert.Equal(disabled ? -1 : 0x41, target.Shared.HighestDeliverable);
    }
}
