using ActorVm.Actors.Lapic;
using ActorVm.Actors.Logging;
using ActorVm.Actors.RunLoop;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using static ActorVm.Actors.Vcpu.VcpuProtocol;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.RunLoop;

/// <summary>
/// The common x86 layer alone: probes play the vCPU (receives Run, answers with exits), the
/// LAPIC (answers acknowledges) and the VM. The guest never runs, so every decision of
/// kvm_check_and_inject_events is observable in the Run message.
/// </summary>
public sealed class RunLoopActorSpec : TestKit
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(3);

    public RunLoopActorSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    private sealed record Rig(VcpuContext Ctx, IActorRef RunLoop, TestProbe Vcpu, TestProbe Lapic, TestProbe Vm)
    {
        public VcpuShared Shared => Ctx.Shared;

        public Cpu Cpu => Ctx.Cpu;

        public VcpuStatistics Stats => Ctx.Counters.Snapshot(0);
    }

    private Rig Create()
    {
        var machine = new Machine(new MachineConfig(1, 4), new ManualTscClock());
        TestGuest.LoadReal(machine, 0, a => { a.nop(); a.hlt(); });
        var ctx = new VcpuContext(machine, 0, new VmOptions(), Tracepoints.Off);
        var vcpu = CreateTestProbe();
        var lapic = CreateTestProbe();
        var vm = CreateTestProbe();
        var runLoop = Sys.ActorOf(RunLoopActor.Props(ctx, vcpu.Ref, lapic.Ref, vm.Ref));
        ctx.Shared.RunLoop = runLoop;
        return new Rig(ctx, runLoop, vcpu, lapic, vm);
    }

    private static void PendIrq(Rig rig, int vector)
    {
        rig.Shared.HighestDeliverable = vector;
        rig.Shared.MakeRequest(KvmRequest.Event);
    }

    private static void PendNmi(Rig rig)
    {
        rig.Shared.QueueNmi();
        rig.Shared.MakeRequest(KvmRequest.Nmi);
    }

    [Fact(DisplayName = "§5: an IRQ with IF=1 is acknowledged by the LAPIC (round trip) and injected, no forced exit")]
    public void IrqAcknowledgedAndInjected()
    {
        var rig = Create();
        rig.Cpu.SetControlFlag(Rflags.IF, true);
        PendIrq(rig, 0x40);
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);

        rig.Lapic.ExpectMsg<LapicProtocol.AcknowledgeInterrupt>(Bound);
        rig.Vcpu.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        rig.Lapic.Reply(new LapicProtocol.InterruptAcknowledged(0x40, -1));
        var run = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(new EventInjection(0x40, EventType.ExternalInterrupt), run.Injection);
        Assert.False(run.Force);
        Assert.False(run.InterruptWindow);
        Assert.Equal(1, rig.Stats.Injections.Irqs);
    }

    [Fact(DisplayName = "I11: an IRQ with IF=0 is not injected; the interrupt window opens, its exit re-evaluates")]
    public void IrqWithInterruptsOffOpensWindow()
    {
        var rig = Create();
        PendIrq(rig, 0x40);
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);

        var run = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Null(run.Injection);
        Assert.True(run.InterruptWindow);
        rig.Lapic.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        rig.Cpu.SetControlFlag(Rflags.IF, true);
        rig.Vcpu.Reply(new VcpuExited(new VmExit(ExitReason.InterruptWindow), FastpathResult.None, false));
        rig.Lapic.ExpectMsg<LapicProtocol.AcknowledgeInterrupt>(Bound);
        rig.Lapic.Reply(new LapicProtocol.InterruptAcknowledged(0x40, -1));
        var next = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.False(next.InterruptWindow, "handle_interrupt_window cleared the control");
        Assert.Equal((byte)0x40, next.Injection?.Vector);
    }

    [Fact(DisplayName = "§5 -EBUSY: NMI injected while an IRQ waits → force_immediate_exit, no acknowledge")]
    public void NmiThenIrqForcesImmediateExit()
    {
        var rig = Create();
        rig.Cpu.SetControlFlag(Rflags.IF, true);
        PendNmi(rig);
        PendIrq(rig, 0x40);
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);

        var run = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(new EventInjection(2, EventType.Nmi), run.Injection);
        Assert.True(run.Force);
        rig.Lapic.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        Assert.Equal(1, rig.Stats.Injections.Nmis);
    }

    [Fact(DisplayName = "I5: cancel_injection re-makes EVENT and re-injects the loaded event, still forced")]
    public void CancelledForcedEntryIsRetried()
    {
        var rig = Create();
        rig.Cpu.SetControlFlag(Rflags.IF, true);
        PendNmi(rig);
        PendIrq(rig, 0x40);
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);
        var run = rig.Vcpu.ExpectMsg<Run>(Bound);
        var eventsBefore = rig.Stats.RequestsServiced["EVENT"];

        rig.Vcpu.Reply(new EntryCancelled(run.Force, run.Injection));
        var retry = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(run.Injection, retry.Injection);
        Assert.True(retry.Force, "the re-injected NMI leaves no room for the waiting IRQ");
        Assert.Equal(eventsBefore + 1, rig.Stats.RequestsServiced["EVENT"]);
        Assert.Equal(1, rig.Stats.Injections.Nmis);
    }

    [Fact(DisplayName = "WRMSR of an unknown MSR: the slowpath abandons it and the next entry injects #GP(0); a waiting NMI forces the exit")]
    public void UnknownMsrInjectsGp()
    {
        var rig = Create();
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);
        rig.Vcpu.ExpectMsg<Run>(Bound);
        PendNmi(rig);
        rig.Vcpu.Reply(new VcpuExited(new VmExit(ExitReason.MsrWrite, Qualification: 0xDEAD, IsWrite: true), FastpathResult.None, false));

        var run = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(new EventInjection(13, EventType.HardwareException, 0), run.Injection);
        Assert.True(run.Force, "the NMI behind the exception is -EBUSY");
        Assert.Equal(1, rig.Stats.Injections.Exceptions);
    }

    [Fact(DisplayName = "process_nmi: queued NMIs are capped at 2 pending; a third is dropped")]
    public void NmiPendingCappedAtTwo()
    {
        var rig = Create();
        for (var i = 0; i < 3; i++)
        {
            rig.Shared.QueueNmi();
        }

        rig.Shared.MakeRequest(KvmRequest.Nmi);
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);
        var first = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(EventType.Nmi, first.Injection?.Type);
        Assert.True(first.NmiWindow, "one NMI stays pending behind the injected one");

        rig.Cpu.NmiBlocked = false; // the handler's IRET
        rig.Vcpu.Reply(new VcpuExited(new VmExit(ExitReason.NmiWindow), FastpathResult.None, false));
        var second = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(EventType.Nmi, second.Injection?.Type);
        Assert.False(second.NmiWindow);

        rig.Cpu.NmiBlocked = false;
        rig.Vcpu.Reply(new VcpuExited(new VmExit(ExitReason.ExternalInterrupt), FastpathResult.None, false));
        Assert.Null(rig.Vcpu.ExpectMsg<Run>(Bound).Injection);
        Assert.Equal(2, rig.Stats.Injections.Nmis);
    }

    [Fact(DisplayName = "I8 negative control: a slowpath PREEMPTION_TIMER outside L2 is counted as a WARN")]
    public void SlowpathPreemptionTimerOutsideL2Warns()
    {
        var rig = Create();
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);
        rig.Vcpu.ExpectMsg<Run>(Bound);
        rig.Vcpu.Reply(new VcpuExited(new VmExit(ExitReason.PreemptionTimer), FastpathResult.None, false));
        rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(1, rig.Stats.Warnings.SlowpathPreemptionTimerOutsideL2);

        rig.Shared.L2Active = true;
        rig.Vcpu.Reply(new VcpuExited(new VmExit(ExitReason.PreemptionTimer), FastpathResult.None, false));
        rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(1, rig.Stats.Warnings.SlowpathPreemptionTimerOutsideL2);
    }

    [Fact(DisplayName = "An exit without a handler is counted and ends the VM with a clear error")]
    public void UnhandledExitFailsTheVm()
    {
        var rig = Create();
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);
        rig.Vcpu.ExpectMsg<Run>(Bound);
        rig.Vcpu.Reply(new VcpuExited(new VmExit(ExitReason.Invd), FastpathResult.None, false));

        var failed = rig.Vm.ExpectMsg<VmProtocol.VcpuFailed>(Bound);
        Assert.Contains("INVD", failed.Detail, StringComparison.Ordinal);
        Assert.Equal(1, rig.Stats.Warnings.UnhandledExits);
        rig.Vcpu.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
    }

    [Fact(DisplayName = "E1: TRIPLE_FAULT request shuts the VM down before any entry; TLB_FLUSH is serviced first")]
    public void TripleFaultRequest()
    {
        var rig = Create();
        rig.Shared.MakeRequest(KvmRequest.TlbFlush);
        rig.Shared.MakeRequest(KvmRequest.TripleFault);
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);

        var shutdown = rig.Vm.ExpectMsg<VmProtocol.VcpuShutdown>(Bound);
        Assert.Equal(VmExitKind.TripleFault, shutdown.Kind);
        rig.Vcpu.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        Assert.Equal(1, rig.Stats.RequestsServiced["TLB_FLUSH"]);
    }

    [Fact(DisplayName = "I12: a HALTED vCPU with IF=0 and an NMI queued but not yet requested stays blocked; KVM_REQ_NMI and its kick wake it and inject the NMI")]
    public void QueuedNmiWakesOnlyWithItsRequest()
    {
        var rig = Create();
        rig.RunLoop.Tell(RunLoopProtocol.Start.Instance);
        rig.Vcpu.ExpectMsg<Run>(Bound);
        rig.Cpu.Halted = true; // the HLT fastpath found nothing: EXIT_HANDLED, IF=0
        rig.Vcpu.Reply(new VcpuExited(new VmExit(ExitReason.Hlt), FastpathResult.ExitHandled, false));
        rig.Lapic.ExpectMsg<LapicProtocol.SwitchTimer>(Bound); // vcpu_block: the sw timer while blocked

        // The sender between atomic_inc(nmi_queued) and kvm_make_request(KVM_REQ_NMI), and a
        // wake-up from an older kick: kvm_vcpu_has_events is still false, nothing to run for.
        rig.Shared.QueueNmi();
        rig.RunLoop.Tell(RunLoopProtocol.Wake.Instance);
        rig.Vcpu.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        Assert.True(rig.Cpu.Halted);

        rig.Shared.MakeRequest(KvmRequest.Nmi);
        rig.Shared.Kick();
        var run = rig.Vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(new EventInjection(2, EventType.Nmi), run.Injection);
        Assert.False(rig.Cpu.Halted);
    }

    [Fact(DisplayName = "I14: an AP waits for INIT then SIPI; SIPI starts it at CS=vector<<8, IP=0; a SIPI while RUNNABLE is dropped")]
    public void InitSipi()
    {
        var machine = new Machine(new MachineConfig(2, 4), new ManualTscClock());
        var ctx = new VcpuContext(machine, 1, new VmOptions(), Tracepoints.Off);
        var vcpu = CreateTestProbe();
        var runLoop = Sys.ActorOf(RunLoopActor.Props(ctx, vcpu.Ref, CreateTestProbe().Ref, CreateTestProbe().Ref));
        ctx.Shared.RunLoop = runLoop;
        runLoop.Tell(RunLoopProtocol.Start.Instance);
        vcpu.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        ctx.Shared.PostSipi(0x12); // SIPI before INIT: dropped (UNINITIALIZED)
        ctx.Shared.MakeRequest(KvmRequest.Event);
        ctx.Shared.Kick();
        vcpu.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        ctx.Shared.PostInit();
        ctx.Shared.PostSipi(0x9A);
        ctx.Shared.MakeRequest(KvmRequest.Event);
        ctx.Shared.Kick();
        vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal((ushort)0x9A00, ctx.Cpu.Seg[(int)SegReg.CS].Selector);
        Assert.Equal(0x9A000UL, ctx.Cpu.Seg[(int)SegReg.CS].Base);
        Assert.Equal(0UL, ctx.Cpu.Rip);

        ctx.Shared.PostSipi(0x55); // RUNNABLE: dropped
        ctx.Shared.MakeRequest(KvmRequest.Event);
        vcpu.Reply(new VcpuExited(new VmExit(ExitReason.ExternalInterrupt), FastpathResult.None, false));
        vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal((ushort)0x9A00, ctx.Cpu.Seg[(int)SegReg.CS].Selector);
    }
}
