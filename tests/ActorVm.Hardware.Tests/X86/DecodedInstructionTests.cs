using System.Runtime.CompilerServices;
using ActorVm.Hardware.X86;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// The pre-decoded record the fast forms read instead of Iced's packed fields: its operands must
/// be what Iced decoded, and the generic handlers rely on the instruction being its first field.
/// </summary>
public class DecodedInstructionTests
{
    private static Instruction Decode(int bitness, Action<Assembler> emit)
    {
        var a = new Assembler(bitness);
        emit(a);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), 0x8000);
        return Iced.Intel.Decoder.Create(bitness, stream.ToArray(), 0x8000).Decode();
    }

    [Fact]
    public void TheInstructionIsTheFirstField()
    {
        var d = DecodedInstruction.From(Decode(32, a => a.nop()));
        Assert.True(Unsafe.AreSame(ref Unsafe.As<DecodedInstruction, Instruction>(ref d), ref d.Instruction));
    }

    [Fact]
    public void MemoryOperandPartsAreIcedsWithTheDefaultSegment()
    {
        var load = DecodedInstruction.From(Decode(32, a => a.mov(edx, __dword_ptr[ebx + esi * 4 - 0x10])));
        // A 32-bit address uses the displacement's low 32 bits.
        Assert.Equal((2, 3, 6, 2, 0xFFFF_FFF0u, (byte)SegReg.DS), (load.Reg, load.Base, load.Index, load.Scale, (uint)load.Disp, load.Segment));
        Assert.Equal(0x8000UL + (ulong)load.Instruction.Length, load.NextIp);

        var store = DecodedInstruction.From(Decode(32, a => a.mov(__dword_ptr[ebp + 8], ecx)));
        Assert.Equal((1, 5, DecodedInstruction.NoIndex, (byte)SegReg.SS), (store.Src, store.Base, store.Index, store.Segment));

        var fs = DecodedInstruction.From(Decode(64, a => a.mov(r9, __qword_ptr.fs[r12 + r13 * 8])));
        Assert.Equal((9, 12, 13, 3, (byte)SegReg.FS), (fs.Reg, fs.Base, fs.Index, fs.Scale, fs.Segment));
    }

    [Fact]
    public void ImmediatesAreSignExtendedAndBranchTargetsDecoded()
    {
        Assert.Equal(ulong.MaxValue - 4, DecodedInstruction.From(Decode(64, a => a.add(rax, -5))).Imm);
        Assert.Equal(0xFFFF_FFFBu, (uint)DecodedInstruction.From(Decode(32, a => a.add(eax, -5))).Imm);
        Assert.Equal(ulong.MaxValue - 4, DecodedInstruction.From(Decode(64, a => a.sub(rdx, -5))).Imm);
        Assert.Equal(0xFFFF_FFFF_8000_0000UL, DecodedInstruction.From(Decode(64, a => a.add(rcx, int.MinValue))).Imm);
        Assert.Equal(0x8000_0000UL, DecodedInstruction.From(Decode(32, a => a.mov(ecx, 0x8000_0000))).Imm);
        Assert.Equal(3UL, DecodedInstruction.From(Decode(32, a => a.shl(ecx, 3))).Imm);

        var jcc = DecodedInstruction.From(Decode(64, a =>
        {
            var l = a.CreateLabel();
            a.jne(l);
            a.nop();
            a.Label(ref l);
            a.nop();
        }));
        Assert.Equal(jcc.Instruction.NearBranch64, jcc.Imm);
        Assert.Equal(jcc.NextIp + 1, jcc.Imm);
    }
}
