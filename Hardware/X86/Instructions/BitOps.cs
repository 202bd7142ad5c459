using System.Numerics;
using System.Runtime.CompilerServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// BT/BTS/BTR/BTC, BSF/BSR, TZCNT/LZCNT/POPCNT (SDM vol. 2). BT* change only CF (OF, SF, AF, PF
/// are undefined and kept); BSF/BSR change only ZF and leave the destination unchanged on a zero
/// source, as Intel and AMD do.
/// </summary>
internal static unsafe class BitOps
{
    private const int Test = 0, SetBit = 1, Reset = 2, Complement = 3;

    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Bt, Arithmetic.Forms(Mnemonic.Bt));
        b.Add(&Bts, Arithmetic.Forms(Mnemonic.Bts));
        b.Add(&Btr, Arithmetic.Forms(Mnemonic.Btr));
        b.Add(&Btc, Arithmetic.Forms(Mnemonic.Btc));
        b.Add(&Bsf, Arithmetic.Forms(Mnemonic.Bsf));
        b.Add(&Bsr, Arithmetic.Forms(Mnemonic.Bsr));
        b.Add(&Tzcnt, Arithmetic.Forms(Mnemonic.Tzcnt));
        b.Add(&Lzcnt, Arithmetic.Forms(Mnemonic.Lzcnt));
        b.Add(&Popcnt, Arithmetic.Forms(Mnemonic.Popcnt));

        // BMI1 (CPUID.(EAX=07H,ECX=0):EBX.BMI1[bit 3], together with TZCNT above).
        b.Add(&Andn, Code.VEX_Andn_r32_r32_rm32, Code.VEX_Andn_r64_r64_rm64);
        b.Add(&Bextr, Code.VEX_Bextr_r32_rm32_r32, Code.VEX_Bextr_r64_rm64_r64);
        b.Add(&Blsi, Code.VEX_Blsi_r32_rm32, Code.VEX_Blsi_r64_rm64);
        b.Add(&Blsmsk, Code.VEX_Blsmsk_r32_rm32, Code.VEX_Blsmsk_r64_rm64);
        b.Add(&Blsr, Code.VEX_Blsr_r32_rm32, Code.VEX_Blsr_r64_rm64);
    }

    /// <summary>Status flags for a BMI1 result: ZF and SF from it, the given CF, OF cleared; AF and PF (undefined) cleared.</summary>
    private static void SetBmiFlags(Cpu cpu, int size, ulong res, bool cf)
    {
        var s = cf ? Rflags.CF : 0;
        if (res == 0)
        {
            s |= Rflags.ZF;
        }

        if ((res >> ((size * 8) - 1)) != 0)
        {
            s |= Rflags.SF;
        }

        cpu.SetStatusFlags(s);
    }

    /// <summary>ANDN: dest = ~src1 &amp; src2.</summary>
    private static void Andn(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var res = ~cpu.ReadReg(ins.Op1Register) & cpu.ReadOp(ref ins, 2, size) & Cpu.SizeMask(size);
        cpu.WriteReg(ins.Op0Register, res);
        SetBmiFlags(cpu, size, res, false);
    }

    /// <summary>BEXTR: bit field of src1 at start src2[7:0], length src2[15:8]. SF is undefined (cleared).</summary>
    private static void Bextr(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var control = cpu.ReadReg(ins.Op2Register);
        var start = (int)(control & 0xFF);
        var len = (int)((control >> 8) & 0xFF);
        var bits = size * 8;
        var res = start >= bits ? 0 : src >> start;
        if (len < 64)
        {
            res &= (1UL << len) - 1;
        }

        cpu.WriteReg(ins.Op0Register, res);
        cpu.SetStatusFlags(res == 0 ? Rflags.ZF : 0);
    }

    /// <summary>BLSI: isolate the lowest set bit; CF = source non-zero.</summary>
    private static void Blsi(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var res = (0 - src) & src & Cpu.SizeMask(size);
        cpu.WriteReg(ins.Op0Register, res);
        SetBmiFlags(cpu, size, res, src != 0);
    }

    /// <summary>BLSMSK: mask up to the lowest set bit; CF = source zero; ZF always cleared.</summary>
    private static void Blsmsk(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var res = ((src - 1) ^ src) & Cpu.SizeMask(size);
        cpu.WriteReg(ins.Op0Register, res);
        SetBmiFlags(cpu, size, res, src == 0);
    }

    /// <summary>BLSR: clear the lowest set bit; CF = source zero.</summary>
    private static void Blsr(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var res = (src - 1) & src & Cpu.SizeMask(size);
        cpu.WriteReg(ins.Op0Register, res);
        SetBmiFlags(cpu, size, res, src == 0);
    }

    private static void Bt(Cpu cpu, ref Instruction ins) => BitOp(cpu, ref ins, Test);

    private static void Bts(Cpu cpu, ref Instruction ins) => BitOp(cpu, ref ins, SetBit);

    private static void Btr(Cpu cpu, ref Instruction ins) => BitOp(cpu, ref ins, Reset);

    private static void Btc(Cpu cpu, ref Instruction ins) => BitOp(cpu, ref ins, Complement);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BitOp(Cpu cpu, ref Instruction ins, int op)
    {
        var size = Cpu.OpSize(ref ins);
        var bits = size * 8;
        ulong bit;
        ulong la;
        ulong value;
        if (ins.Op1Kind == OpKind.Register && ins.Op0Kind == OpKind.Memory)
        {
            // A register bit offset is signed and may address memory beyond the operand
            // (SDM BT: bit base + (offset DIV size)*size bytes, bit offset MOD size).
            var raw = cpu.ReadReg(ins.Op1Register);
            var offset = size switch { 2 => (short)raw, 4 => (int)raw, _ => (long)raw };
            var unitShift = size switch { 2 => 4, 4 => 5, _ => 6 };
            var displacement = (offset >> unitShift) * size;
            bit = (ulong)offset & (ulong)(bits - 1);
            var ea = cpu.EffectiveAddress(ref ins) + (ulong)displacement;
            ea = cpu.AddressSize(ref ins) switch { 2 => (ushort)ea, 4 => (uint)ea, _ => ea };
            la = cpu.Linear((SegReg)(ins.MemorySegment - Iced.Intel.Register.ES), ea);
        }
        else
        {
            bit = cpu.ReadOp(ref ins, 1, size) & (ulong)(bits - 1);
            la = ins.Op0Kind == OpKind.Memory ? cpu.MemoryLinear(ref ins) : Cpu.RegisterOperand;
        }

        var m = 1UL << (int)bit;
        if (op != Test && ins.HasLockPrefix)
        {
            value = op switch
            {
                SetBit => cpu.AtomicUpdate(la, size, m, &Logic.OrOp),
                Reset => cpu.AtomicUpdate(la, size, m, &Logic.AndNotOp),
                _ => cpu.AtomicUpdate(la, size, m, &Logic.XorOp),
            };
        }
        else
        {
            value = la == Cpu.RegisterOperand ? cpu.ReadReg(ins.Op0Register) : cpu.ReadLinear(la, size);
            if (op != Test)
            {
                var res = op switch { SetBit => value | m, Reset => value & ~m, _ => value ^ m };
                cpu.WriteDest(ref ins, size, la, res);
            }
        }

        cpu.SetSomeFlags(Rflags.CF, (value & m) != 0 ? Rflags.CF : 0);
    }

    private static void Bsf(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        if (src == 0)
        {
            cpu.SetSomeFlags(Rflags.ZF, Rflags.ZF);
            return;
        }

        cpu.WriteReg(ins.Op0Register, (ulong)BitOperations.TrailingZeroCount(src));
        cpu.SetSomeFlags(Rflags.ZF, 0);
    }

    private static void Bsr(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        if (src == 0)
        {
            cpu.SetSomeFlags(Rflags.ZF, Rflags.ZF);
            return;
        }

        cpu.WriteReg(ins.Op0Register, (ulong)(63 - BitOperations.LeadingZeroCount(src)));
        cpu.SetSomeFlags(Rflags.ZF, 0);
    }

    /// <summary>TZCNT: CF = source was zero, ZF = result is zero; OF, SF, AF, PF undefined (kept).</summary>
    private static void Tzcnt(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var res = src == 0 ? (ulong)(size * 8) : (ulong)BitOperations.TrailingZeroCount(src);
        cpu.WriteReg(ins.Op0Register, res);
        cpu.SetSomeFlags(Rflags.CF | Rflags.ZF, (src == 0 ? Rflags.CF : 0) | (res == 0 ? Rflags.ZF : 0));
    }

    private static void Lzcnt(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var res = (ulong)(BitOperations.LeadingZeroCount(src) - (64 - (size * 8)));
        cpu.WriteReg(ins.Op0Register, res);
        cpu.SetSomeFlags(Rflags.CF | Rflags.ZF, (src == 0 ? Rflags.CF : 0) | (res == 0 ? Rflags.ZF : 0));
    }

    /// <summary>POPCNT: OF, SF, ZF, AF, CF, PF cleared, then ZF = source was zero.</summary>
    private static void Popcnt(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        cpu.WriteReg(ins.Op0Register, (ulong)BitOperations.PopCount(src));
        cpu.SetStatusFlags(src == 0 ? Rflags.ZF : 0);
    }
}
