using System.Runtime.CompilerServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR, SHLD, SHRD (SDM vol. 2). The count is masked to 5 bits
/// (6 with a 64-bit operand); a masked count of 0 changes neither the flags nor memory. OF is
/// defined only for a count of 1; for other counts we apply the same formula (what Intel hardware
/// does for SHL/SHR/ROL/ROR). AF is undefined for shifts and cleared.
/// </summary>
internal static unsafe class ShiftRotate
{
    private const int Shl = 0, Shr = 1, Sar = 2, Rol = 3, Ror = 4, Rcl = 5, Rcr = 6;

    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&ShlH, Arithmetic.Forms(Mnemonic.Shl));
        b.Add(&ShlH, Arithmetic.Forms(Mnemonic.Sal));
        b.Add(&ShrH, Arithmetic.Forms(Mnemonic.Shr));
        b.Add(&SarH, Arithmetic.Forms(Mnemonic.Sar));
        b.Add(&RolH, Arithmetic.Forms(Mnemonic.Rol));
        b.Add(&RorH, Arithmetic.Forms(Mnemonic.Ror));
        b.Add(&RclH, Arithmetic.Forms(Mnemonic.Rcl));
        b.Add(&RcrH, Arithmetic.Forms(Mnemonic.Rcr));
        b.Add(&Shld, Arithmetic.Forms(Mnemonic.Shld));
        b.Add(&Shrd, Arithmetic.Forms(Mnemonic.Shrd));
    }

    private static void ShlH(Cpu cpu, ref Instruction ins) => Shift(cpu, ref ins, Shl);

    private static void ShrH(Cpu cpu, ref Instruction ins) => Shift(cpu, ref ins, Shr);

    private static void SarH(Cpu cpu, ref Instruction ins) => Shift(cpu, ref ins, Sar);

    private static void RolH(Cpu cpu, ref Instruction ins) => Shift(cpu, ref ins, Rol);

    private static void RorH(Cpu cpu, ref Instruction ins) => Shift(cpu, ref ins, Ror);

    private static void RclH(Cpu cpu, ref Instruction ins) => Shift(cpu, ref ins, Rcl);

    private static void RcrH(Cpu cpu, ref Instruction ins) => Shift(cpu, ref ins, Rcr);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Szp(ulong res, int bits)
    {
        ulong s = 0;
        if (res == 0)
        {
            s |= Rflags.ZF;
        }

        if (((res >> (bits - 1)) & 1) != 0)
        {
            s |= Rflags.SF;
        }

        if (Cpu.Parity(res))
        {
            s |= Rflags.PF;
        }

        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Shift(Cpu cpu, ref Instruction ins, int op)
    {
        var size = Cpu.OpSize(ref ins);
        var count = (int)(cpu.ReadOp(ref ins, 1, 1) & (size == 8 ? 0x3FUL : 0x1FUL));
        var dst = cpu.ReadDest(ref ins, size, out var addr);
        if (count == 0)
        {
            if (addr == Cpu.RegisterOperand && size == 4)
            {
                // A 32-bit register destination is still written (zero-extended) with count 0.
                cpu.WriteDest(ref ins, size, addr, dst);
            }

            return;
        }

        var bits = size * 8;
        var mask = Cpu.SizeMask(size);
        var msb = bits - 1;
        ulong res;
        bool cf;
        switch (op)
        {
            case Shl:
            {
                res = (dst << count) & mask;
                cf = count <= bits && ((dst >> (bits - count)) & 1) != 0;
                var of = ((res >> msb) & 1) != 0 ^ cf;
                cpu.SetStatusFlags(Szp(res, bits) | (cf ? Rflags.CF : 0) | (of ? Rflags.OF : 0));
                break;
            }

            case Shr:
            {
                res = dst >> count;
                cf = ((dst >> (count - 1)) & 1) != 0;
                var of = count == 1 && ((dst >> msb) & 1) != 0;
                cpu.SetStatusFlags(Szp(res, bits) | (cf ? Rflags.CF : 0) | (of ? Rflags.OF : 0));
                break;
            }

            case Sar:
            {
                var s = (long)(dst << (64 - bits)) >> (64 - bits);
                res = (ulong)(s >> count) & mask;
                cf = ((s >> (count - 1)) & 1) != 0;
                cpu.SetStatusFlags(Szp(res, bits) | (cf ? Rflags.CF : 0));
                break;
            }

            case Rol:
            {
                var c = count & msb;
                res = c == 0 ? dst : ((dst << c) | (dst >> (bits - c))) & mask;
                cf = (res & 1) != 0;
                var of = ((res >> msb) & 1) != 0 ^ cf;
                cpu.SetSomeFlags(Rflags.CF | Rflags.OF, (cf ? Rflags.CF : 0) | (of ? Rflags.OF : 0));
                break;
            }

            case Ror:
            {
                var c = count & msb;
                res = c == 0 ? dst : ((dst >> c) | (dst << (bits - c))) & mask;
                cf = ((res >> msb) & 1) != 0;
                var of = cf ^ (((res >> (msb - 1)) & 1) != 0);
                cpu.SetSomeFlags(Rflags.CF | Rflags.OF, (cf ? Rflags.CF : 0) | (of ? Rflags.OF : 0));
                break;
            }

            case Rcl:
            {
                // Rotate through CF: a (bits+1)-wide rotation.
                var c = bits < 32 ? count % (bits + 1) : count;
                var oldCf = cpu.CF;
                var w = bits + 1;
                var v = ((UInt128)(oldCf ? 1UL : 0) << bits) | dst;
                var wmask = (UInt128.One << w) - 1;
                var r = c == 0 ? v : ((v << c) | (v >> (w - c))) & wmask;
                res = (ulong)r & mask;
                cf = ((r >> bits) & 1) != 0;
                var of = ((res >> msb) & 1) != 0 ^ cf;
                cpu.SetSomeFlags(Rflags.CF | Rflags.OF, (cf ? Rflags.CF : 0) | (of ? Rflags.OF : 0));
                break;
            }

            default:
            {
                var c = bits < 32 ? count % (bits + 1) : count;
                var oldCf = cpu.CF;
                var w = bits + 1;
                var v = ((UInt128)(oldCf ? 1UL : 0) << bits) | dst;
                var wmask = (UInt128.One << w) - 1;
                var r = c == 0 ? v : ((v >> c) | (v << (w - c))) & wmask;
                res = (ulong)r & mask;
                cf = ((r >> bits) & 1) != 0;
                var of = (((res >> msb) ^ (res >> (msb - 1))) & 1) != 0;
                cpu.SetSomeFlags(Rflags.CF | Rflags.OF, (cf ? Rflags.CF : 0) | (of ? Rflags.OF : 0));
                break;
            }
        }

        cpu.WriteDest(ref ins, size, addr, res);
    }

    /// <summary>SHLD r/m, r, imm8/CL: shifts bits of the source in from the right.</summary>
    private static void Shld(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var count = (int)(cpu.ReadOp(ref ins, 2, 1) & (size == 8 ? 0x3FUL : 0x1FUL));
        var src = cpu.ReadReg(ins.Op1Register);
        var dst = cpu.ReadDest(ref ins, size, out var addr);
        if (count == 0)
        {
            if (addr == Cpu.RegisterOperand && size == 4)
            {
                cpu.WriteDest(ref ins, size, addr, dst);
            }

            return;
        }

        var bits = size * 8;
        var mask = Cpu.SizeMask(size);

        ulong res;
        bool cf;
        if (count < bits)
        {
            res = ((dst << count) | (src >> (bits - count))) & mask;
            cf = ((dst >> (bits - count)) & 1) != 0;
        }
        else
        {
            // Only a 16-bit operand gets here (count 16..31; undefined): keep shifting the dst:src:dst pattern.
            var v = ((ulong)dst << 32) | (src << 16) | dst;
            var shifted = v << count;
            res = (shifted >> 32) & mask;
            cf = ((shifted >> 48) & 1) != 0;
        }

        var of = (((res ^ dst) >> (bits - 1)) & 1) != 0;
        cpu.SetStatusFlags(Szp(res, bits) | (cf ? Rflags.CF : 0) | (of ? Rflags.OF : 0));
        cpu.WriteDest(ref ins, size, addr, res);
    }

    /// <summary>SHRD r/m, r, imm8/CL: shifts bits of the source in from the left.</summary>
    private static void Shrd(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var count = (int)(cpu.ReadOp(ref ins, 2, 1) & (size == 8 ? 0x3FUL : 0x1FUL));
        var src = cpu.ReadReg(ins.Op1Register);
        var dst = cpu.ReadDest(ref ins, size, out var addr);
        if (count == 0)
        {
            if (addr == Cpu.RegisterOperand && size == 4)
            {
                cpu.WriteDest(ref ins, size, addr, dst);
            }

            return;
        }

        var bits = size * 8;
        var mask = Cpu.SizeMask(size);
        ulong res;
        bool cf;
        if (count < bits)
        {
            res = ((dst >> count) | (src << (bits - count))) & mask;
            cf = ((dst >> (count - 1)) & 1) != 0;
        }
        else
        {
            // 16-bit operand, count 16..31 (undefined): src:dst:src shifted right.
            var v = ((ulong)src << 32) | (dst << 16) | src;
            v = (v << 16) | dst;
            res = (v >> count) & mask;
            cf = ((v >> (count - 1)) & 1) != 0;
        }

        var of = (((res ^ dst) >> (bits - 1)) & 1) != 0;
        cpu.SetStatusFlags(Szp(res, bits) | (cf ? Rflags.CF : 0) | (of ? Rflags.OF : 0));
        cpu.WriteDest(ref ins, size, addr, res);
    }
}
