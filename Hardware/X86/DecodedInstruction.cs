using System.Runtime.InteropServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86;

/// <summary>
/// One instruction of a decoded block: Iced's <see cref="Iced.Intel.Instruction"/> for the
/// generic handlers, plus the operands the specialised handlers (<see cref="Instructions.FastForms"/>)
/// need, pre-decoded once when the block is decoded: register indices, the parts of the
/// effective address, the segment, the immediate or branch target. Reading Iced's packed
/// fields (register enums, operand kinds, the immediate's kind) on every execution cost the
/// hot handlers a dozen instructions each; these are plain bytes and words.
/// </summary>
/// <remarks>
/// <see cref="Instruction"/> is the first field: a generic handler,
/// <c>delegate*&lt;Cpu, ref Instruction, void&gt;</c>, is called with a reference to the record,
/// which is a reference to its instruction (checked by DecodedInstructionTests).
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct DecodedInstruction
{
    /// <summary>No index register in the address.</summary>
    public const byte NoIndex = 0xFF;

    public Instruction Instruction;

    /// <summary>The handler the chained loop runs: specialised, generic, or fused with the next instruction.</summary>
    public nint Handler;

    /// <summary>The handler of this instruction alone (differs from <see cref="Handler"/> when fused).</summary>
    public nint Solo;

    /// <summary>RIP of the following instruction (what RIP holds while the handler runs).</summary>
    public ulong NextIp;

    /// <summary>Immediate (sign-extended to 64 bits where the form sign-extends it; 32-bit forms use the low half), or the branch target.</summary>
    public ulong Imm;

    /// <summary>Address displacement as Iced stores it (sign-extended for 64-bit addresses; 32-bit addresses use the low half).</summary>
    public ulong Disp;

    /// <summary>GPR index of operand 0 (a register destination or the register of a store).</summary>
    public byte Reg;

    /// <summary>GPR index of operand 1 when it is a register.</summary>
    public byte Src;

    /// <summary>GPR index of the address base.</summary>
    public byte Base;

    /// <summary>GPR index of the address index, or <see cref="NoIndex"/>.</summary>
    public byte Index;

    /// <summary>log2 of the index scale.</summary>
    public byte Scale;

    /// <summary>The <see cref="SegReg"/> of the memory operand (override or default, SDM vol. 1 3.7.4.1).</summary>
    public byte Segment;

    /// <summary>Branch target of the Jcc a fused handler ends with, or where a predicted RET should return to.</summary>
    public ulong FusedTarget;

    /// <summary>RIP after the Jcc a fused handler ends with (its fall-through).</summary>
    public ulong FusedNext;

    /// <summary>The record for a decoded instruction; the handlers are set by the caller.</summary>
    public static DecodedInstruction From(in Instruction ins)
    {
        var d = new DecodedInstruction { Instruction = ins, NextIp = ins.NextIP, Index = NoIndex };
        if (ins.OpCount >= 1 && ins.Op0Kind == OpKind.Register)
        {
            d.Reg = GprIndex(ins.Op0Register);
        }

        if (ins.OpCount >= 2 && ins.Op1Kind == OpKind.Register)
        {
            d.Src = GprIndex(ins.Op1Register);
        }

        var immOp = ins.OpCount >= 2 ? ins.Op1Kind : ins.OpCount == 1 ? ins.Op0Kind : OpKind.Register;
        d.Imm = immOp switch
        {
            OpKind.Immediate8 => ins.Immediate8,
            OpKind.Immediate8to32 => (ulong)(long)ins.Immediate8to32,
            OpKind.Immediate32 => ins.Immediate32,
            OpKind.Immediate8to64 => (ulong)ins.Immediate8to64,
            OpKind.Immediate32to64 => (ulong)ins.Immediate32to64,
            OpKind.NearBranch32 or OpKind.NearBranch64 => ins.NearBranch64,
            _ => 0,
        };

        if (ins.MemoryBase != Register.None || ins.MemoryIndex != Register.None)
        {
            d.Base = GprIndex(ins.MemoryBase);
            d.Index = ins.MemoryIndex == Register.None ? NoIndex : GprIndex(ins.MemoryIndex);
            d.Scale = (byte)System.Numerics.BitOperations.Log2((uint)ins.MemoryIndexScale);
        }

        d.Disp = ins.MemoryDisplacement64;
        d.Segment = (byte)Instructions.FastForms.LeanSegment(ref d.Instruction);
        return d;
    }

    /// <summary>Encoding index of a 32- or 64-bit GPR (0 for anything else; the fast forms only use those).</summary>
    private static byte GprIndex(Register r) => r switch
    {
        >= Register.EAX and <= Register.R15D => (byte)(r - Register.EAX),
        >= Register.RAX and <= Register.R15 => (byte)(r - Register.RAX),
        _ => 0,
    };
}
