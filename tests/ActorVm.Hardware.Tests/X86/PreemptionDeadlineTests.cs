using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// The VMX preemption deadline of <see cref="VmEntry"/>: 0 exits before the first instruction
/// (SDM 26.7.4), a due deadline exits at the first check, and an entry the caller marks
/// <see cref="VmEntry.DeadlineKnownFar"/> checks first after <see cref="Cpu.DeadlineCheckInterval"/>.
/// </summary>
public class PreemptionDeadlineTests
{
    [Fact]
    public void ZeroDeadlineExitsBeforeTheFirstInstruction()
    {
        using var h = Spinning();
        var exit = h.Cpu.Run(new VmEntry(PreemptionDeadlineTsc: 0, InstructionBudget: 10_000, DeadlineKnownFar: true));
        Assert.Equal((ExitReason.PreemptionTimer, 0L), (exit.Reason, exit.InstructionsRetired));
    }

    [Fact]
    public void DueDeadlineExitsAtTheFirstCheck()
    {
        using var h = Spinning();
        Clock(h).Set(5_000);
        var exit = h.Cpu.Run(new VmEntry(PreemptionDeadlineTsc: 4_000, InstructionBudget: 10_000));
        Assert.Equal((ExitReason.PreemptionTimer, 0L), (exit.Reason, exit.InstructionsRetired));
    }

    [Fact]
    public void KnownFarDeadlineIsFirstCheckedAfterOneInterval()
    {
        using var h = Spinning();
        Clock(h).Set(5_000);
        var exit = h.Cpu.Run(new VmEntry(PreemptionDeadlineTsc: 4_000, InstructionBudget: 10_000, DeadlineKnownFar: true));
        Assert.Equal(ExitReason.PreemptionTimer, exit.Reason);
        // Checks happen at block boundaries: the first one at or after the interval.
        Assert.InRange(exit.InstructionsRetired, Cpu.DeadlineCheckInterval, Cpu.DeadlineCheckInterval + 2);
    }

    [Fact]
    public void FarDeadlineIsNotReachedWithinTheBudget()
    {
        using var h = Spinning();
        var exit = h.Cpu.Run(new VmEntry(PreemptionDeadlineTsc: 1_000_000, InstructionBudget: 1_000, DeadlineKnownFar: true));
        Assert.Equal((ExitReason.ExternalInterrupt, 1_000L), (exit.Reason, exit.InstructionsRetired));
    }

    private static ManualTscClock Clock(CpuHarness h) => (ManualTscClock)h.Machine.Clock;

    /// <summary>A two-instruction loop: a block boundary every two instructions.</summary>
    private static CpuHarness Spinning()
    {
        var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            var top = a.CreateLabel();
            a.Label(ref top);
            a.inc(eax);
            a.jmp(top);
        });
        return h;
    }
}
