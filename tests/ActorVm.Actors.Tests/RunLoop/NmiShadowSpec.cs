using ActorVm.Actors.Logging;
using ActorVm.Actors.RunLoop;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using static ActorVm.Actors.Vcpu.VcpuProtocol;

namespace ActorVm.Actors.Tests.RunLoop;

/// <summary>
/// vmx_nmi_allowed: no NMI is injected while the guest is in an STI shadow (issue 8); the NMI
/// window is requested instead and the NMI goes in once the shadow is over.
/// </summary>
public sealed class NmiShadowSpec : TestKit
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(3);

    public NmiShadowSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    [Fact(DisplayName = "No NMI in the STI shadow: the NMI window opens, the NMI is injected after the shadow")]
    public void NmiWaitsForTheStiShadow()
    {
        using var machine = new Machine(new MachineConfig(1, 4), new ManualTscClock());
        TestGuest.LoadReal(machine, 0, a =>
        {
            a.cli();
            a.sti();
            a.nop();
            a.hlt();
        });
        var cpu = machine.Cpus[0];
        cpu.Run(new VmEntry(InstructionBudget: 2)); // CLI, STI: the NOP is in the shadow
        Assert.True(cpu.InterruptShadow, "precondition: STI with IF=0 opened a shadow");

        var ctx = new VcpuContext(machine, 0, new VmOptions(), Tracepoints.Off);
        var vcpu = CreateTestProbe();
        var runLoop = Sys.ActorOf(RunLoopActor.Props(ctx, vcpu.Ref, CreateTestProbe().Ref, CreateTestProbe().Ref));
        ctx.Shared.RunLoop = runLoop;
        ctx.Shared.QueueNmi();
        ctx.Shared.MakeRequest(KvmRequest.Nmi);
        runLoop.Tell(RunLoopProtocol.Start.Instance);

        var first = vcpu.ExpectMsg<Run>(Bound);
        Assert.Null(first.Injection);
        Assert.True(first.NmiWindow);

        // The vCPU runs the shadowed NOP; the window exit comes once the shadow is over.
        cpu.Run(new VmEntry(InstructionBudget: 1));
        Assert.False(cpu.InterruptShadow);
        vcpu.Reply(new VcpuExited(new VmExit(ExitReason.NmiWindow), FastpathResult.None, false));
        var second = vcpu.ExpectMsg<Run>(Bound);
        Assert.Equal(new EventInjection(2, EventType.Nmi), second.Injection);
    }
}
