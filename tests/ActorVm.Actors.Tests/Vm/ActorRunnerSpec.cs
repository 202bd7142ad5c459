using System.Text;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;

namespace ActorVm.Actors.Tests.Vm;

/// <summary>The platform's IVmRunner seam driven by the actor run loop: a Multiboot guest on a PC machine.</summary>
public sealed class ActorRunnerSpec
{
    [Fact(DisplayName = "ActorRunner runs the platform's Multiboot 'hello' guest: COM1 output and debug-exit status as the synchronous runner")]
    public void HelloGuest()
    {
        var serial = new StringBuilder();
        using var machine = Machine.CreatePc(new MachineConfig(2, 16), bytes => serial.Append(Encoding.ASCII.GetString(bytes)));
        MultibootLoader.Load(machine, GuestPrograms.BuildHello(), "hello");

        var runner = new ActorRunner();
        var result = runner.Run(machine, new RunLimits(WallTime: TimeSpan.FromSeconds(4)));

        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        Assert.Equal(1, result.DebugExitStatus);
        Assert.Equal(GuestPrograms.HelloText, serial.ToString());
        Assert.True(result.InstructionsRetired > 0);
        Assert.Equal(0, runner.LastResult!.Statistics.PerVcpu[1].InstructionsRetired); // the AP waits for INIT/SIPI
    }

    [Fact(DisplayName = "ActorRunner runs 'longmode-selftest' (mode switches, #DE/#UD/#PF/#GP handlers) to status 1")]
    public void LongModeSelftest()
    {
        using var machine = Machine.CreatePc(new MachineConfig(1, 16));
        MultibootLoader.Load(machine, GuestPrograms.BuildLongModeSelftest(), "longmode-selftest");

        var result = new ActorRunner().Run(machine, new RunLimits(WallTime: TimeSpan.FromSeconds(4)));

        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        Assert.Equal(1, result.DebugExitStatus);
    }

    [Fact(DisplayName = "ActorRunner: a guest that halts with IF=0 and no timer ends as HaltedForever, not at the time limit")]
    public void HaltedForever()
    {
        using var machine = Machine.CreatePc(new MachineConfig(2, 4));
        TestGuest.LoadReal(machine, 0, a => { a.cli(); a.hlt(); });

        var result = new ActorRunner().Run(machine, new RunLimits(WallTime: TimeSpan.FromSeconds(4)));

        Assert.Equal(RunOutcome.HaltedForever, result.Outcome);
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(2));
    }
}
