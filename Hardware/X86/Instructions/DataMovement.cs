using System.Buffers.Binary;
using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// MOV, MOVZX/MOVSX/MOVSXD, LEA, XCHG, BSWAP, CMOVcc, SETcc, CBW..CQO, XLAT, NOP/ENDBR (SDM vol. 2).
/// MOV Sreg and MOV CR/DR live with the segment and system instructions.
/// </summary>
internal static unsafe class DataMovement
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Mov,
            Code.Mov_rm8_r8, Code.Mov_rm16_r16, Code.Mov_rm32_r32, Code.Mov_rm64_r64,
            Code.Mov_r8_rm8, Code.Mov_r16_rm16, Code.Mov_r32_rm32, Code.Mov_r64_rm64,
            Code.Mov_r8_imm8, Code.Mov_r16_imm16, Code.Mov_r32_imm32, Code.Mov_r64_imm64,
            Code.Mov_rm8_imm8, Code.Mov_rm16_imm16, Code.Mov_rm32_imm32, Code.Mov_rm64_imm32,
            Code.Mov_AL_moffs8, Code.Mov_AX_moffs16, Code.Mov_EAX_moffs32, Code.Mov_RAX_moffs64,
            Code.Mov_moffs8_AL, Code.Mov_moffs16_AX, Code.Mov_moffs32_EAX, Code.Mov_moffs64_RAX);
        b.Add(&Movzx, Code.Movzx_r16_rm8, Code.Movzx_r32_rm8, Code.Movzx_r64_rm8, Code.Movzx_r16_rm16, Code.Movzx_r32_rm16, Code.Movzx_r64_rm16);
        b.Add(&Movsx, Code.Movsx_r16_rm8, Code.Movsx_r32_rm8, Code.Movsx_r64_rm8, Code.Movsx_r16_rm16, Code.Movsx_r32_rm16, Code.Movsx_r64_rm16,
            Code.Movsxd_r16_rm16, Code.Movsxd_r32_rm32, Code.Movsxd_r64_rm32);
        b.Add(&Lea, Code.Lea_r16_m, Code.Lea_r32_m, Code.Lea_r64_m);
        b.Add(&Xchg, Arithmetic.Forms(Mnemonic.Xchg));
        b.Add(&Bswap, Code.Bswap_r16, Code.Bswap_r32, Code.Bswap_r64);
        foreach (var code in Enum.GetValues<Code>())
        {
            if (code.Encoding() != EncodingKind.Legacy || code.ConditionCode() == ConditionCode.None)
            {
                continue;
            }

            if (code.Mnemonic().ToString().StartsWith("Cmov", StringComparison.Ordinal))
            {
                b.Add(&Cmovcc, code);
            }
            else if (code.Mnemonic().ToString().StartsWith("Set", StringComparison.Ordinal))
            {
                b.Add(&Setcc, code);
            }
        }

        b.Add(&Cbw, Code.Cbw, Code.Cwde, Code.Cdqe);
        b.Add(&Cwd, Code.Cwd, Code.Cdq, Code.Cqo);
        b.Add(&Xlat, Code.Xlat_m8);
        b.Add(&Nop, Code.Nopw, Code.Nopd, Code.Nopq, Code.Nop_rm16, Code.Nop_rm32, Code.Nop_rm64, Code.Endbr32, Code.Endbr64);
    }

    private static void Mov(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        cpu.WriteOp(ref ins, 0, size, cpu.ReadOp(ref ins, 1, size));
    }

    private static void Movzx(Cpu cpu, ref Instruction ins)
    {
        cpu.WriteReg(ins.Op0Register, cpu.ReadOp(ref ins, 1, Cpu.OpSize(ref ins, 1)));
    }

    private static void Movsx(Cpu cpu, ref Instruction ins)
    {
        var v = cpu.ReadOp(ref ins, 1, Cpu.OpSize(ref ins, 1));
        long s = Cpu.OpSize(ref ins, 1) switch { 1 => (sbyte)v, 2 => (short)v, 4 => (int)v, _ => (long)v };
        cpu.WriteReg(ins.Op0Register, (ulong)s);
    }

    /// <summary>LEA: the effective address (already wrapped to the address size), truncated to the operand size by the register write.</summary>
    private static void Lea(Cpu cpu, ref Instruction ins) => cpu.WriteReg(ins.Op0Register, cpu.EffectiveAddress(ref ins));

    /// <summary>XCHG: with a memory operand it is always locked (SDM XCHG).</summary>
    private static void Xchg(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        if (ins.Op0Kind == OpKind.Memory || ins.Op1Kind == OpKind.Memory)
        {
            var reg = ins.Op0Kind == OpKind.Register ? ins.Op0Register : ins.Op1Register;
            var la = cpu.MemoryLinear(ref ins);
            var old = cpu.AtomicUpdate(la, size, cpu.ReadReg(reg), &ExchangeOp);
            cpu.WriteReg(reg, old);
            return;
        }

        var a = cpu.ReadReg(ins.Op0Register);
        var b = cpu.ReadReg(ins.Op1Register);
        cpu.WriteReg(ins.Op0Register, b);
        cpu.WriteReg(ins.Op1Register, a);
    }

    private static ulong ExchangeOp(ulong old, ulong value, int size) => value;

    /// <summary>BSWAP; the 16-bit form is undefined by the SDM and clears the low word on Intel and AMD.</summary>
    private static void Bswap(Cpu cpu, ref Instruction ins)
    {
        var r = ins.Op0Register;
        var v = cpu.ReadReg(r);
        cpu.WriteReg(r, Cpu.RegisterWidth(r) switch
        {
            2 => 0,
            4 => BinaryPrimitives.ReverseEndianness((uint)v),
            _ => BinaryPrimitives.ReverseEndianness(v),
        });
    }

    /// <summary>CMOVcc: the source is read (and may fault) whatever the condition; a 32-bit destination is zero-extended even when not moved.</summary>
    private static void Cmovcc(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var v = cpu.ReadOp(ref ins, 1, size);
        if (cpu.Condition((int)ins.ConditionCode - 1))
        {
            cpu.WriteReg(ins.Op0Register, v);
        }
        else if (size == 4)
        {
            cpu.WriteReg(ins.Op0Register, cpu.ReadReg(ins.Op0Register));
        }
    }

    private static void Setcc(Cpu cpu, ref Instruction ins)
    {
        cpu.WriteOp(ref ins, 0, 1, cpu.Condition((int)ins.ConditionCode - 1) ? 1UL : 0);
    }

    private static void Cbw(Cpu cpu, ref Instruction ins)
    {
        var rax = cpu.Gpr[Cpu.RAX];
        switch (ins.Code)
        {
            case Code.Cbw: cpu.WriteGpr(Cpu.RAX, 2, (ulong)(long)(sbyte)rax); break;
            case Code.Cwde: cpu.WriteGpr(Cpu.RAX, 4, (ulong)(long)(short)rax); break;
            default: cpu.Gpr[Cpu.RAX] = (ulong)(long)(int)rax; break;
        }
    }

    private static void Cwd(Cpu cpu, ref Instruction ins)
    {
        var rax = cpu.Gpr[Cpu.RAX];
        switch (ins.Code)
        {
            case Code.Cwd: cpu.WriteGpr(Cpu.RDX, 2, (short)rax < 0 ? ulong.MaxValue : 0); break;
            case Code.Cdq: cpu.WriteGpr(Cpu.RDX, 4, (int)rax < 0 ? ulong.MaxValue : 0); break;
            default: cpu.Gpr[Cpu.RDX] = (long)rax < 0 ? ulong.MaxValue : 0; break;
        }
    }

    /// <summary>XLAT: AL = [seg:rBX + zero-extended AL] (Iced models the operand as base rBX, index AL).</summary>
    private static void Xlat(Cpu cpu, ref Instruction ins)
    {
        var ea = cpu.ReadGpr(Cpu.RBX, cpu.AddressSize(ref ins)) + (byte)cpu.Gpr[Cpu.RAX];
        ea &= Cpu.SizeMask(cpu.AddressSize(ref ins));
        cpu.WriteGpr(Cpu.RAX, 1, cpu.ReadMem((SegReg)(ins.MemorySegment - Iced.Intel.Register.ES), ea, 1));
    }

    private static void Nop(Cpu cpu, ref Instruction ins)
    {
    }
}
