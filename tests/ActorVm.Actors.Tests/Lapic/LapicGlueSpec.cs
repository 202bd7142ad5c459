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
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.Lapic;

/// <summary>
/// The LapicActor's glue around the LocalApic model: what a write's effects require beyond the
/// register itself (IA32_APIC_BASE, level EOIs, INIT, reserved reads, TPR/CR8).
/// </summary>
public sealed class LapicGlueSpec : TestKit
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // a wait, not a time assertion: generous for a loaded CI host
    private const ulong XApicBsp = 0xFEE00000UL | (1 << 11) | (1 << 8);

    public LapicGlueSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    private (VcpuContext Ctx, IActorRef Lapic, TestProbe Bus, ManualTscClock Clock) Create(VmOptions? options = null)
    {
        var clock = new ManualTscClock();
        var machine = new Machine(new MachineConfig(1, 4), clock);
        var ctx = new VcpuContext(machine, 0, options ?? new VmOptions(), Tracepoints.Off);
        var bus = CreateTestProbe();
        var lapic = Sys.ActorOf(LapicActor.Props(ctx, bus.Ref, new HostTimer(clock)));
        return (ctx, lapic, bus, clock);
    }

    private RegisterAccessed Write(IActorRef lapic, uint msr, ulong value)
    {
        lapic.Tell(new WriteMsr(msr, value));
        return ExpectMsg<RegisterAccessed>(Bound);
    }

    private void WriteMmio(IActorRef lapic, uint offset, uint value)
    {
        lapic.Tell(new LapicProtocol.WriteMmio(offset, 4, value));
        ExpectMsg<RegisterAccessed>(Bound);
    }

    private uint ReadMmio(IActorRef lapic, uint offset)
    {
        lapic.Tell(new LapicProtocol.ReadMmio(offset, 4));
        return (uint)ExpectMsg<RegisterAccessed>(Bound).Value;
    }

    [Fact(DisplayName = "IA32_APIC_BASE write: the reply carries the LAPIC's new base (moved page, x2APIC, disabled), which the run loop copies into Cpu.ApicBase")]
    public void ApicBaseReplyCarriesTheNewBase()
    {
        var (_, lapic, _, _) = Create();
        var moved = 0xFED00000UL | (1 << 11) | (1 << 8);
        Assert.Equal(moved, Write(lapic, Msr.ApicBase, moved).Value);
        Assert.Equal(moved | (1 << 10), Write(lapic, Msr.ApicBase, moved | (1 << 10)).Value);
        Assert.True(Write(lapic, Msr.ApicBase, moved).Fault); // x2APIC → xAPIC is #GP (SDM 11.12.5)
    }

    [Fact(DisplayName = "A guest moving its xAPIC page through WRMSR IA32_APIC_BASE: Cpu.ApicBase follows, MMIO at the new page reaches the LAPIC, the old place is RAM again, CPUID.1:EDX.APIC follows EN")]
    public void GuestMovesTheApicPage()
    {
        const ulong moved = 0x90000UL | (1 << 11) | (1 << 8); // a RAM page below 1 MiB, reachable from real mode
        var rig = new Vm.VmRig(Sys, 1, m => TestGuest.LoadReal(m, 0, a =>
        {
            a.Wrmsr(Msr.ApicBase, moved);
            a.mov(ax, 0x9000);
            a.mov(ds, ax);
            a.mov(eax, __dword_ptr[0x30]); // LVR, through the moved page
            a.@out(0x80, eax);
            a.Wrmsr(Msr.ApicBase, XApicBsp);
            a.mov(eax, __dword_ptr[0x30]); // plain RAM again
            a.@out(0x81, eax);
            a.Wrmsr(Msr.ApicBase, XApicBsp & ~(1UL << 11)); // hardware-disable: CPUID.1:EDX.APIC clears
            a.mov(eax, 1);
            a.cpuid();
            a.mov(eax, edx);
            a.and(eax, 1 << 9);
            a.@out(0x82, eax);
            a.mov(dx, ActorVm.Hardware.Devices.DebugExit.DefaultPort);
            a.@out(dx, eax);
            a.cli();
            a.hlt();
        })).Start();
        var result = rig.Await();

        Assert.Equal(VmExitKind.Shutdown, result.Kind);
        var writes = rig.Ports.Writes;
        Assert.Equal(0x00060014u, writes.Single(w => w.Port == 0x80).Value);
        Assert.Equal(0u, writes.Single(w => w.Port == 0x81).Value);
        Assert.Equal(0u, writes.Single(w => w.Port == 0x82).Value);
        Assert.Equal(XApicBsp & ~(1UL << 11), rig.Machine.Cpus[0].ApicBase);
    }

    [Fact(DisplayName = "EOI of a level-triggered vector clears the IOAPIC's remote IRR before the EOI write completes, and a line still high is sent again (kvm_ioapic_update_eoi); an edge vector's EOI leaves the IOAPIC alone")]
    public void LevelEoiReachesTheIoApicInsideTheWrite()
    {
        const int pin = 10;
        var clock = new ManualTscClock();
        var machine = Machine.CreatePc(new MachineConfig(1, 4), clock: clock);
        var sent = new System.Collections.Concurrent.ConcurrentQueue<InterruptMessage>();
        machine.ConnectApicBus(sent.Enqueue);
        var ctx = new VcpuContext(machine, 0, new VmOptions(), Tracepoints.Off);
        var lapic = Sys.ActorOf(LapicActor.Props(ctx, CreateTestProbe().Ref, new HostTimer(clock)));
        Write(lapic, Msr.ApicBase, XApicBsp | (1 << 10));
        Write(lapic, 0x80F, 0x1FF);

        var ioapic = machine.Platform!.IoApic;
        ioapic.Write(0x00, 4, 0x10 + (2 * pin)); // IOREGSEL: redirection entry low
        ioapic.Write(0x10, 4, 0x51 | (1 << 15)); // vector 0x51, level-triggered, fixed, APIC 0
        ioapic.SetIrq(pin, true);
        Assert.True(sent.TryDequeue(out var m) && m.Vector == 0x51 && m.Level);
        Assert.NotEqual(0UL, ioapic.Read(0x10, 4) & (1 << 14)); // remote IRR: delivered, not EOIed

        lapic.Tell(new AcceptInterrupt(m, true));
        lapic.Tell(new AcceptInterrupt(new InterruptMessage(0x41, DeliveryMode.Fixed, false, Level: false, Assert: true, Shorthand.None, 0, -1, true), true));
        lapic.Tell(AcknowledgeInterrupt.Instance);
        Assert.Equal(0x51, ExpectMsg<InterruptAcknowledged>(Bound).Vector);
        ioapic.SetIrq(pin, false);
        Write(lapic, 0x80B, 0); // the reply comes after the IOAPIC saw the EOI
        Assert.Equal(0UL, ioapic.Read(0x10, 4) & (1 << 14));
        Assert.Empty(sent); // the line was low: nothing to send again

        ioapic.SetIrq(pin, true);
        Assert.True(sent.TryDequeue(out _));
        lapic.Tell(AcknowledgeInterrupt.Instance);
        Assert.Equal(0x41, ExpectMsg<InterruptAcknowledged>(Bound).Vector);
        Write(lapic, 0x80B, 0); // edge vector 0x41: the IOAPIC's entry keeps its remote IRR
        Assert.NotEqual(0UL, ioapic.Read(0x10, 4) & (1 << 14));
        Assert.Empty(sent);
    }

    [Fact(DisplayName = "INIT resets the LAPIC's timer: an armed TSC deadline is cancelled (hv deadline cleared, TimerArmed false)")]
    public void InitCancelsTheTimer()
    {
        var (ctx, lapic, _, clock) = Create();
        Write(lapic, Msr.ApicBase, XApicBsp | (1 << 10));
        Write(lapic, 0x80F, 0x1FF);
        Write(lapic, 0x832, (2u << 17) | 0xEF);
        Write(lapic, Msr.TscDeadline, clock.ReadTsc() + 1_000_000);
        Assert.True(ctx.Shared.TimerArmed);
        Assert.NotEqual(VcpuShared.NoDeadline, ctx.Shared.HvDeadline);

        lapic.Tell(new AcceptInterrupt(new InterruptMessage(0, DeliveryMode.Init, false, false, true, Shorthand.None, 0, -1, true), true));
        AwaitCondition(() => !ctx.Shared.TimerArmed, Bound);
        Assert.Equal(VcpuShared.NoDeadline, ctx.Shared.HvDeadline);
        Assert.Equal(VcpuShared.ApicInit, ctx.Shared.ApicEvents);
    }

    [Fact(DisplayName = "sw periodic timer: an expiry that coalesces (LVTT still in IRR) makes no request and no kick; once acknowledged, the next expiry requests and kicks again")]
    public void CoalescedExpiryDoesNotKick()
    {
        var (ctx, lapic, _, clock) = Create(new VmOptions { Timer = TimerBackend.Sw });
        var shared = ctx.Shared;
        Write(lapic, Msr.ApicBase, XApicBsp | (1 << 10));
        Write(lapic, 0x80F, 0x1FF);
        Write(lapic, 0x83E, 0xB); // divide by 1: one count = 1 ns = 1 tick of the 1 GHz test clock
        Write(lapic, 0x832, (1u << 17) | 0x30); // periodic, vector 0x30
        Write(lapic, 0x838, 1_000_000); // 1 ms period
        shared.Mode.Set(ModeWord.InGuestMode); // a running vCPU: a kick shows as IN→EXITING

        // First expiry: LVTT into IRR, UNBLOCK + EVENT, kick.
        clock.Advance(1_000_000);
        AwaitCondition(() => Volatile.Read(ref ctx.Counters.TimerInterrupts) == 1, Bound);
        AwaitCondition(() => shared.Mode.Read() == ModeWord.ExitingGuestMode, Bound);
        Assert.True(shared.CheckRequest(KvmRequest.Event));
        Assert.True(shared.CheckRequest(KvmRequest.Unblock));
        Assert.Equal(0x30, shared.HighestDeliverable);

        // Second expiry before the vCPU acknowledged the first: counted, coalesced, nothing else.
        shared.Mode.Set(ModeWord.InGuestMode);
        clock.Advance(1_000_000);
        AwaitCondition(() => Volatile.Read(ref ctx.Counters.TimerInterrupts) == 2, Bound);
        lapic.Tell(new ReadMsr(0x830)); // a round trip: Expire has finished once this returns
        ExpectMsg<RegisterAccessed>(Bound);
        Assert.Equal(ModeWord.InGuestMode, shared.Mode.Read());
        Assert.False(shared.RequestPending, $"requests {shared.Requests:x} after a coalesced expiry");

        // Acknowledged: IRR is free again, so the third expiry raises it and kicks.
        lapic.Tell(AcknowledgeInterrupt.Instance);
        Assert.Equal(0x30, ExpectMsg<InterruptAcknowledged>(Bound).Vector);
        clock.Advance(1_000_000);
        AwaitCondition(() => shared.Mode.Read() == ModeWord.ExitingGuestMode, Bound);
        Assert.True(shared.TestRequest(KvmRequest.Event));
        Assert.True(shared.TestRequest(KvmRequest.Unblock));
        Assert.Equal(3, Volatile.Read(ref ctx.Counters.TimerInterrupts));
    }

    [Fact(DisplayName = "A read of a reserved xAPIC register raises the LVT error interrupt: EVENT is made and the vector published")]
    public void ReservedReadRaisesTheErrorInterrupt()
    {
        var (ctx, lapic, _, _) = Create();
        WriteMmio(lapic, ApicReg.Svr, 0x1FF);
        WriteMmio(lapic, 0x370, 0xE3); // LVT error: vector 0xE3, unmasked
        ctx.Shared.ClearRequest(KvmRequest.Event);
        Assert.Equal(0u, ReadMmio(lapic, 0x3F0)); // reserved
        Assert.True(ctx.Shared.TestRequest(KvmRequest.Event));
        Assert.Equal(0xE3, ctx.Shared.HighestDeliverable);
    }

    [Fact(DisplayName = "TPR ↔ CR8: a TPR write publishes CR8 under a new epoch; a guest CR8 from the current epoch reaches TPR (and a PPR drop makes EVENT); a stale one is dropped")]
    public void TprAndCr8StayInSync()
    {
        var (ctx, lapic, _, _) = Create();
        WriteMmio(lapic, ApicReg.Svr, 0x1FF);
        WriteMmio(lapic, ApicReg.Tpr, 0x50);
        var published = ctx.Shared.Tpr;
        Assert.Equal(5UL, VcpuShared.Cr8Of(published));

        // The guest raises CR8 during an entry that loaded `published`; an IRQ of class 6 waits behind it.
        Assert.True(ctx.Shared.TryStoreGuestCr8(published, 0xF));
        lapic.Tell(new SetCr8(0xF, VcpuShared.EpochOf(published)));
        Assert.Equal(0xF0u, ReadMmio(lapic, ApicReg.Tpr));
        lapic.Tell(new AcceptInterrupt(new InterruptMessage(0x61, DeliveryMode.Fixed, false, false, true, Shorthand.None, 0, -1, false), true));
        Assert.Equal(0xF0u, ReadMmio(lapic, ApicReg.Tpr));
        Assert.Equal(-1, ctx.Shared.HighestDeliverable);

        // CR8 back to 0: the pending IRQ becomes deliverable, with EVENT.
        ctx.Shared.ClearRequest(KvmRequest.Event);
        lapic.Tell(new SetCr8(0, VcpuShared.EpochOf(published)));
        AwaitCondition(() => ctx.Shared.HighestDeliverable == 0x61 && ctx.Shared.TestRequest(KvmRequest.Event), Bound);

        // INIT starts a new epoch: a CR8 write from before it loses.
        lapic.Tell(new AcceptInterrupt(new InterruptMessage(0, DeliveryMode.Init, false, false, true, Shorthand.None, 0, -1, false), true));
        AwaitCondition(() => VcpuShared.EpochOf(ctx.Shared.Tpr) > VcpuShared.EpochOf(published), Bound);
        Assert.False(ctx.Shared.TryStoreGuestCr8(published, 7));
        lapic.Tell(new SetCr8(7, VcpuShared.EpochOf(published)));
        WriteMmio(lapic, ApicReg.Svr, 0x1FF);
        Assert.Equal(0u, ReadMmio(lapic, ApicReg.Tpr));
    }
}
