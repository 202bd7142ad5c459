using ActorVm.Hardware.Memory;
using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// Instructions that touch memory no device claims exit (EPT violation, 48) and are finished by
/// the exit handler through Cpu.Complete, which replays them with the supplied values.
/// </summary>
public class MmioReplayTests
{
    private const ulong Hole = 0xD000_0000; // no RAM, no device

    [Fact]
    public void AReadModifyWriteOnMmioExitsForTheReadThenTheWriteAndRetires()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            a.mov(ebx, (uint)Hole);
            a.add(__dword_ptr[ebx], 1);
            a.hlt();
        });

        var read = h.Cpu.Run(new VmEntry());
        Assert.Equal(ExitReason.EptViolation, read.Reason);
        Assert.False(read.IsWrite);

        var write = h.Cpu.Complete(41);
        Assert.NotNull(write);
        Assert.Equal(ExitReason.EptViolation, write.Value.Reason);
        Assert.True(write.Value.IsWrite);
        Assert.Equal(42UL, write.Value.Value);

        Assert.Null(h.Cpu.Complete());
        Assert.Equal(ExitReason.Hlt, h.Cpu.Run(new VmEntry()).Reason);
    }

    [Fact]
    public void RepMovsFromMmioToMmioTakesOneReadAndOneWriteExitPerElement()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            a.mov(esi, (uint)Hole);
            a.mov(edi, (uint)Hole + 0x100);
            a.mov(ecx, 3);
            a.cld();
            a.rep.movsd();
            a.hlt();
        });

        var writes = new List<ulong>();
        var exit = h.Cpu.Run(new VmEntry());
        ulong next = 100;
        while (exit.Reason == ExitReason.EptViolation)
        {
            var followUp = exit.IsWrite ? h.Cpu.Complete() : h.Cpu.Complete(next++);
            if (exit.IsWrite)
            {
                writes.Add(exit.Value);
            }

            exit = followUp ?? h.Cpu.Run(new VmEntry());
        }

        Assert.Equal(ExitReason.Hlt, exit.Reason);
        Assert.Equal([100UL, 101UL, 102UL], writes);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX]);
    }

    [Fact]
    public void ADefaultEntryHasNoDeadline()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a => a.hlt());
        Assert.Equal(ExitReason.Hlt, h.Cpu.Run(new VmEntry()).Reason);
    }
}
