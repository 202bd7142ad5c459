using System.Runtime.CompilerServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// [base + index*scale + disp] addressing without the generic operand decode, and the forms
/// built on it: LEA, MOVZX from memory or a register, and ADD/SUB/CMP/AND/OR/XOR of a
/// register with a memory source. The address is what <see cref="Cpu.EffectiveAddress"/>
/// computes (wrapped to the address size, which is the base register's width) and goes
/// through <see cref="Cpu.Linear"/> for the segment and the canonical check.
/// </summary>
internal static unsafe partial class FastForms
{
    private static bool IsGpr32(Register r) => r is >= Register.EAX and <= Register.R15D;
    private static bool IsGpr64(Register r) => r is >= Register.RAX and <= Register.R15;

    /// <summary>A base register (not RIP), an optional index of the same width.</summary>
    private static bool LeanAddress(in Instruction ins) =>
        !ins.IsIPRelativeMemoryOperand
        && ((IsGpr32(ins.MemoryBase) && (ins.MemoryIndex == Register.None || IsGpr32(ins.MemoryIndex)))
            || (IsGpr64(ins.MemoryBase) && (ins.MemoryIndex == Register.None || IsGpr64(ins.MemoryIndex))));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong LeanEa(Cpu cpu, ref Instruction ins)
    {
        var b = ins.MemoryBase;
        var x = ins.MemoryIndex;
        if (b <= Register.R15D)
        {
            var ea = (uint)cpu.Gpr[b - Register.EAX] + (uint)ins.MemoryDisplacement64;
            if (x != Register.None)
            {
                ea += (uint)cpu.Gpr[x - Register.EAX] * (uint)ins.MemoryIndexScale;
            }

            return ea;
        }

        var ea64 = cpu.Gpr[b - Register.RAX] + ins.MemoryDisplacement64;
        if (x != Register.None)
        {
            ea64 += cpu.Gpr[x - Register.RAX] * (ulong)ins.MemoryIndexScale;
        }

        return ea64;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong LeanLinear(Cpu cpu, ref Instruction ins) =>
        cpu.Linear(LeanSegment(ref ins), LeanEa(cpu, ref ins));

    /// <summary>
    /// The segment of a memory operand: the override prefix, else SS for an rSP or rBP base and
    /// DS otherwise (SDM vol. 1 3.7.4.1), what Iced's MemorySegment computes, but small enough
    /// to inline (the property is a call in every load and store).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static SegReg LeanSegment(ref Instruction ins)
    {
        var prefix = ins.SegmentPrefix;
        if (prefix != Register.None)
        {
            return (SegReg)(prefix - Register.ES);
        }

        return ins.MemoryBase is Register.ESP or Register.EBP or Register.RSP or Register.RBP ? SegReg.SS : SegReg.DS;
    }

    private static nint SelectAddressing(in Instruction ins)
    {
        if (ins.OpCount != 2 || ins.Op0Kind != OpKind.Register)
        {
            return 0;
        }

        var mem = ins.Op1Kind == OpKind.Memory && LeanAddress(ins);
        var reg = ins.Op1Kind == OpKind.Register;
        return ins.Code switch
        {
            Code.Lea_r32_m when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&Lea32,
            Code.Lea_r64_m when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&Lea64,
            Code.Movzx_r32_rm8 or Code.Movzx_r64_rm8 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&MovzxLoad8,
            Code.Movzx_r32_rm16 or Code.Movzx_r64_rm16 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&MovzxLoad16,
            Code.Movzx_r32_rm8 or Code.Movzx_r32_rm16 or Code.Movzx_r64_rm8 or Code.Movzx_r64_rm16 when reg => (nint)(delegate*<Cpu, ref Instruction, void>)&MovzxReg,
            Code.Add_r32_rm32 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&AddLoad32,
            Code.Add_r64_rm64 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&AddLoad64,
            Code.Sub_r32_rm32 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&SubLoad32,
            Code.Cmp_r32_rm32 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&CmpLoad32,
            Code.Cmp_r64_rm64 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&CmpLoad64,
            Code.And_r32_rm32 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&AndLoad32,
            Code.Or_r32_rm32 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&OrLoad32,
            Code.Xor_r32_rm32 when mem => (nint)(delegate*<Cpu, ref Instruction, void>)&XorLoad32,
            _ => 0,
        };
    }

    // LEA does no memory access: the effective address, truncated to the operand size.
    private static void Lea32(Cpu cpu, ref Instruction ins) => cpu.Gpr[R32(ins.Op0Register)] = (uint)LeanEa(cpu, ref ins);
    private static void Lea64(Cpu cpu, ref Instruction ins) => cpu.Gpr[R64(ins.Op0Register)] = LeanEa(cpu, ref ins);

    // MOVZX into a 32-bit register zero-extends to 64 bits like any 32-bit write (SDM vol. 1 3.4.1.1).
    private static void MovzxLoad8(Cpu cpu, ref Instruction ins) => cpu.WriteReg(ins.Op0Register, cpu.ReadLinear(LeanLinear(cpu, ref ins), 1));
    private static void MovzxLoad16(Cpu cpu, ref Instruction ins) => cpu.WriteReg(ins.Op0Register, cpu.ReadLinear(LeanLinear(cpu, ref ins), 2));
    private static void MovzxReg(Cpu cpu, ref Instruction ins) => cpu.WriteReg(ins.Op0Register, cpu.ReadReg(ins.Op1Register));

    private static void AddLoad32(Cpu cpu, ref Instruction ins)
    {
        var b = (uint)cpu.ReadLinear(LeanLinear(cpu, ref ins), 4);
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var a = (uint)d;
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 4, a, b, r);
    }

    private static void AddLoad64(Cpu cpu, ref Instruction ins)
    {
        var b = cpu.ReadLinear(LeanLinear(cpu, ref ins), 8);
        ref var d = ref cpu.Gpr[R64(ins.Op0Register)];
        var a = d;
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 8, a, b, r);
    }

    private static void SubLoad32(Cpu cpu, ref Instruction ins)
    {
        var b = (uint)cpu.ReadLinear(LeanLinear(cpu, ref ins), 4);
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var a = (uint)d;
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 4, a, b, r);
    }

    private static void CmpLoad32(Cpu cpu, ref Instruction ins)
    {
        var b = (uint)cpu.ReadLinear(LeanLinear(cpu, ref ins), 4);
        var a = (uint)cpu.Gpr[R32(ins.Op0Register)];
        cpu.SetLazy(FlagOp.Sub, 4, a, b, a - b);
    }

    private static void CmpLoad64(Cpu cpu, ref Instruction ins)
    {
        var b = cpu.ReadLinear(LeanLinear(cpu, ref ins), 8);
        var a = cpu.Gpr[R64(ins.Op0Register)];
        cpu.SetLazy(FlagOp.Sub, 8, a, b, a - b);
    }

    private static void AndLoad32(Cpu cpu, ref Instruction ins)
    {
        var b = (uint)cpu.ReadLinear(LeanLinear(cpu, ref ins), 4);
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var r = (uint)d & b;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    private static void OrLoad32(Cpu cpu, ref Instruction ins)
    {
        var b = (uint)cpu.ReadLinear(LeanLinear(cpu, ref ins), 4);
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var r = (uint)d | b;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    private static void XorLoad32(Cpu cpu, ref Instruction ins)
    {
        var b = (uint)cpu.ReadLinear(LeanLinear(cpu, ref ins), 4);
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var r = (uint)d ^ b;
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }
}
