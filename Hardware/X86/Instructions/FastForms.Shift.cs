using System.Runtime.CompilerServices;
using Iced.Intel;
using unsafe Handler = delegate*<ActorVm.Hardware.X86.Cpu, ref ActorVm.Hardware.X86.DecodedInstruction, void>;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// SHL/SHR/SAR of a 32- or 64-bit register by an immediate (and by the implicit 1). Same
/// results and flags as <see cref="ShiftRotate"/>: the count is masked to 5 or 6 bits; a
/// masked count of 0 changes no flags (a 32-bit register is still zero-extended); otherwise
/// SF/ZF/PF from the result, CF the last bit out, OF for SHL the MSB xor CF, for SHR the
/// original MSB when the count is 1, for SAR 0; AF is left clear (SDM SAL/SAR/SHL/SHR). The
/// flags are recorded lazily (FlagOp.Shl/Shr/Sar): a loop that shifts and then DEC/JNZ never
/// computes CF or OF.
/// </summary>
internal static unsafe partial class FastForms
{
    private static nint SelectShift(in Instruction ins)
    {
        if (ins.OpCount != 2 || ins.Op0Kind != OpKind.Register || ins.Op1Kind != OpKind.Immediate8)
        {
            return 0;
        }

        return ins.Code switch
        {
            Code.Shl_rm32_imm8 or Code.Shl_rm32_1 => H(&ShlRI32),
            Code.Shr_rm32_imm8 or Code.Shr_rm32_1 => H(&ShrRI32),
            Code.Sar_rm32_imm8 or Code.Sar_rm32_1 => H(&SarRI32),
            Code.Shl_rm64_imm8 or Code.Shl_rm64_1 => H(&ShlRI64),
            Code.Shr_rm64_imm8 or Code.Shr_rm64_1 => H(&ShrRI64),
            Code.Sar_rm64_imm8 or Code.Sar_rm64_1 => H(&SarRI64),
            _ => 0,
        };
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void ShlRI32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var v = (uint)d;
        var count = (int)op.Imm & 31;
        if (count == 0)
        {
            d = v;
            return;
        }

        var res = v << count;
        d = res;
        cpu.SetLazy(FlagOp.Shl, 4, v, (ulong)count, res);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void ShrRI32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var v = (uint)d;
        var count = (int)op.Imm & 31;
        if (count == 0)
        {
            d = v;
            return;
        }

        var res = v >> count;
        d = res;
        cpu.SetLazy(FlagOp.Shr, 4, v, (ulong)count, res);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void SarRI32(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var v = (int)(uint)d;
        var count = (int)op.Imm & 31;
        if (count == 0)
        {
            d = (uint)v;
            return;
        }

        var res = (uint)(v >> count);
        d = res;
        cpu.SetLazy(FlagOp.Sar, 4, (uint)v, (ulong)count, res);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void ShlRI64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var v = d;
        var count = (int)op.Imm & 63;
        if (count == 0)
        {
            return;
        }

        var res = v << count;
        d = res;
        cpu.SetLazy(FlagOp.Shl, 8, v, (ulong)count, res);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void ShrRI64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var v = d;
        var count = (int)op.Imm & 63;
        if (count == 0)
        {
            return;
        }

        var res = v >> count;
        d = res;
        cpu.SetLazy(FlagOp.Shr, 8, v, (ulong)count, res);
    }

    [RegisterOnly]
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // inlined into composed blocks (BlockCompiler)
    private static void SarRI64(Cpu cpu, ref DecodedInstruction op)
    {
        ref var d = ref cpu.GprAt(op.Reg);
        var v = (long)d;
        var count = (int)op.Imm & 63;
        if (count == 0)
        {
            return;
        }

        var res = (ulong)(v >> count);
        d = res;
        cpu.SetLazy(FlagOp.Sar, 8, (ulong)v, (ulong)count, res);
    }
}
