using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// <see cref="VmEntry.EntryTsc"/>: the slice's first deadline check (before any instruction
/// retires) uses the TSC the run loop read at entry instead of a second clock read, and only
/// against the entry's own deadline.
/// </summary>
public class EntryTscTests
{
    private const ulong Deadline = 10_000;

    private static CpuHarness Guest(ulong clock)
    {
        var h = CpuHarness.Create(64);
        h.Load(a =>
        {
            a.mov(eax, 1);
            a.mov(ebx, 2);
            a.hlt();
        });
        ((ManualTscClock)h.Machine.Clock).Set(clock);
        return h;
    }

    [Fact]
    public void FirstCheckComparesTheEntryTscNotTheClock()
    {
        using var h = Guest(clock: 100);

        var exit = h.Cpu.Run(new VmEntry(PreemptionDeadlineTsc: Deadline, EntryTsc: Deadline));

        Assert.Equal(ExitReason.PreemptionTimer, exit.Reason);
        Assert.Equal(0, exit.InstructionsRetired);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RAX]);
    }

    [Fact]
    public void WithoutAnEntryTscTheFirstCheckReadsTheClock()
    {
        using var early = Guest(clock: Deadline - 1);
        Assert.Equal(ExitReason.Hlt, early.Cpu.Run(new VmEntry(PreemptionDeadlineTsc: Deadline)).Reason);
        Assert.Equal(2UL, early.Cpu.Gpr[Cpu.RBX]);

        using var due = Guest(clock: Deadline);
        var exit = due.Cpu.Run(new VmEntry(PreemptionDeadlineTsc: Deadline));
        Assert.Equal(ExitReason.PreemptionTimer, exit.Reason);
        Assert.Equal(0, exit.InstructionsRetired);
    }

    [Fact]
    public void AnAdoptedPublishedDeadlineReadsTheClock()
    {
        // The LAPIC published an earlier deadline (500) after the run loop read the TSC (100):
        // the clock (1000) says it is already due, the stale entry TSC would not.
        using var h = Guest(clock: 1_000);
        var published = new DeadlineWord();
        published.Write(500);
        h.Cpu.PublishedDeadline = published;

        var exit = h.Cpu.Run(new VmEntry(PreemptionDeadlineTsc: Deadline, EntryTsc: 100));

        Assert.Equal(ExitReason.PreemptionTimer, exit.Reason);
        Assert.Equal(0, exit.InstructionsRetired);
        Assert.Equal(500UL, h.Cpu.SliceDeadlineTsc);
    }
}
