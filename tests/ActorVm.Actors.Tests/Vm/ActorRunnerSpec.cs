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
        var result = runner.Run(machine, new RunLimits(WallTime: TimeSpan.FromSeconds(20)));

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

        var result = new ActorRunner().Run(machine, new RunLimits(WallTime: TimeSpan.FromSeconds(20)));

        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        Assert.Equal(1, result.DebugExitStatus);
    }

    [Fact(DisplayName = "ActorRunner: a guest that halts with IF=0 and no timer ends as HaltedForever, not at the time limit")]
    public void HaltedForever()
    {
        using var machine = Machine.CreatePc(new MachineConfig(2, 4));
        TestGuest.LoadReal(machine, 0, a => { a.cli(); a.hlt(); });

        // The limit is far above the ~100 ms the two quiescence polls take, so a loaded CI host
        // (the VM actor's poll waits for a thread-pool thread) cannot turn a correct run into a
        // failure; a detector that never fires still ends as TimeLimit and fails the first assert.
        var limit = TimeSpan.FromSeconds(30);
        var result = new ActorRunner().Run(machine, new RunLimits(WallTime: limit));

        Assert.Equal(RunOutcome.HaltedForever, result.Outcome);
        Assert.True(result.Elapsed < limit / 2, $"took {result.Elapsed}");
    }

    [Theory(DisplayName = "ActorRunner honours RunLimits.MaxInstructions: a spinning guest stops as InstructionLimit after that many instructions (one block of slack)")]
    [InlineData(1)]
    [InlineData(2)]
    public void InstructionLimit(int vcpus)
    {
        const long limit = 300_000;
        using var machine = Machine.CreatePc(new MachineConfig(vcpus, 4));
        TestGuest.LoadReal(machine, 0, a =>
        {
            var l = a.CreateLabel();
            a.Label(ref l);
            a.inc(Iced.Intel.AssemblerRegisters.ax);
            a.jmp(l);
        });

        var runner = new ActorRunner(new VmOptions { SliceInstructions = 7_000 });
        var result = runner.Run(machine, new RunLimits(MaxInstructions: limit, WallTime: TimeSpan.FromSeconds(20)));

        Assert.Equal(RunOutcome.InstructionLimit, result.Outcome);
        Assert.InRange(result.InstructionsRetired, limit, limit + 2);
        Assert.Equal(VmExitKind.InstructionLimit, runner.LastResult!.Kind);
        Assert.Contains("instruction limit of 300000 reached", result.Detail);
    }
}
