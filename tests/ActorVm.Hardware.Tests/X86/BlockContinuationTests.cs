using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// A decoded block goes on at the target of a direct CALL or JMP on the same page: what runs
/// after the branch must still fault at its own RIP, retire the right count, and be dropped when
/// the code it continued into is rewritten.
/// </summary>
public class BlockContinuationTests
{
    [Fact]
    public void AFaultInALeafDecodedIntoTheCallersBlockIsAtTheLeafsInstruction()
    {
        using var h = CpuHarness.Create(64);
        h.InstallFaultStubs();
        h.Load(a =>
        {
            var leaf = a.CreateLabel();
            a.call(leaf);   // 0x8000, 5 bytes
            a.hlt();        // 0x8005: the return address
            a.Label(ref leaf);
            a.nop();        // 0x8006
            a.ud2();        // 0x8007
        });
        h.Cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(Vector.UD, h.FaultVector);
        var frame = h.Cpu.Gpr[Cpu.RSP];
        // The exception frame's RIP is the UD2; the CALL's return address is below the frame.
        Assert.Equal(CpuHarness.CodeBase + 7, h.Machine.Memory.Read64(frame));
        Assert.Equal(CpuHarness.CodeBase + 5, h.Machine.Memory.Read64(CpuHarness.StackTop - 8));
        // CALL and NOP retired, UD2 did not (the stub's HLT exits before retiring).
        Assert.Equal(2, h.Cpu.InstructionsRetired);
    }

    [Fact]
    public void RewritingCodeAJumpContinuedIntoDropsTheBlock()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            var target = a.CreateLabel();
            var again = a.CreateLabel();
            a.Label(ref again);
            a.jmp(target);
            a.Label(ref target);
            a.mov(eax, 1);          // B8 imm32: its immediate is patched below
            a.hlt();
            // After the first HLT: patch the immediate, then run the same JMP again.
            a.mov(__byte_ptr[(uint)CpuHarness.CodeBase + 3], 9);
            a.jmp(again);
        });

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(1UL, h.Cpu.Gpr[Cpu.RAX]);
        h.Cpu.Complete();
        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(9UL, h.Cpu.Gpr[Cpu.RAX]);
    }

    [Theory]
    [InlineData(32, true)]
    [InlineData(32, false)]
    [InlineData(64, true)]
    public void ARetDecodedThroughToTheCallersNextInstructionStillGoesWhereTheStackSays(int bitness, bool fastForms)
    {
        using var h = CpuHarness.Create(bitness);
        h.Cpu.UseFastForms = fastForms;
        h.Load(a =>
        {
            var leaf = a.CreateLabel();
            var plain = a.CreateLabel();
            a.call(plain);          // returns where predicted
            a.mov(ebx, 2);
            a.call(leaf);           // the leaf moves its return address past the MOV
            a.mov(eax, 1);          // 5 bytes, skipped
            a.hlt();
            a.Label(ref leaf);
            if (bitness == 64) a.add(__qword_ptr[rsp], 5); else a.add(__dword_ptr[esp], 5);
            a.Label(ref plain);
            a.ret();
        });
        h.Cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal((0UL, 2UL), (h.Cpu.Gpr[Cpu.RAX], h.Cpu.Gpr[Cpu.RBX]));
        // CALL, RET, MOV, CALL, ADD, RET (the skipped MOV never ran; HLT exits before retiring).
        Assert.Equal(6, h.Cpu.InstructionsRetired);
    }
}
