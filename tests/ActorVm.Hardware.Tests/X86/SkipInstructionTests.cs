using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// <see cref="Cpu.SkipPendingInstruction"/>, the interpreter's kvm_skip_emulated_instruction: an
/// exit handler that applied a WRMSR itself retires it without a replay.
/// </summary>
public class SkipInstructionTests
{
    private const ulong Hole = 0xD000_0000; // no RAM, no device: an MMIO exit

    [Fact]
    public void ASkippedWrmsrRetiresAndTheGuestRunsOnAfterIt()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            a.mov(ecx, 0x830);
            a.mov(eax, 0x4041);
            a.xor(edx, edx);
            a.wrmsr();
            a.mov(ebx, 7);
            a.hlt();
        });

        var exit = h.Cpu.Run(new VmEntry());
        Assert.Equal((ExitReason.MsrWrite, 0x830UL, 0x4041UL), (exit.Reason, exit.Qualification, exit.Value));
        var wrmsrAt = h.Cpu.Rip;
        var retired = h.Cpu.InstructionsRetired;

        h.Cpu.SkipPendingInstruction();

        Assert.False(h.Cpu.HasPendingInstruction);
        Assert.Equal(wrmsrAt + 2, h.Cpu.Rip); // WRMSR is 0F 30
        Assert.Equal(retired + 1, h.Cpu.InstructionsRetired);
        Assert.Equal(ExitReason.Hlt, h.Cpu.Run(new VmEntry()).Reason);
        Assert.Equal(7UL, h.Cpu.Gpr[Cpu.RBX]);
    }

    [Fact]
    public void ASkippedWrmsrEndsTheStiShadowItRanUnder()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            a.mov(ecx, 0x830);
            a.sti();
            a.wrmsr();
            a.hlt();
        });

        Assert.Equal(ExitReason.MsrWrite, h.Cpu.Run(new VmEntry()).Reason);
        Assert.True(h.Cpu.InterruptShadow); // STI's shadow covers the WRMSR (SDM 6.8.3)

        h.Cpu.SkipPendingInstruction();

        Assert.False(h.Cpu.InterruptShadow);
    }

    [Fact]
    public void AnMmioExitCannotBeSkipped_ItsReplayMustConsumeTheValue()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            a.mov(ebx, (uint)Hole);
            a.mov(eax, __dword_ptr[ebx]);
            a.hlt();
        });

        Assert.Equal(ExitReason.EptViolation, h.Cpu.Run(new VmEntry()).Reason);
        Assert.Throws<InvalidOperationException>(h.Cpu.SkipPendingInstruction);
        Assert.True(h.Cpu.HasPendingInstruction);
        Assert.Null(h.Cpu.Complete(5));
        Assert.Equal(5UL, h.Cpu.Gpr[Cpu.RAX]);
    }

    [Fact]
    public void NothingPendingCannotBeSkipped()
    {
        using var h = CpuHarness.Create(32);
        Assert.Throws<InvalidOperationException>(h.Cpu.SkipPendingInstruction);
    }
}
