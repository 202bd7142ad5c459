using System.Runtime.CompilerServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// ADD, ADC, SUB, SBB, CMP, INC, DEC, NEG (SDM vol. 2): flags recorded lazily. MUL/IMUL/DIV/IDIV
/// set the flags eagerly. A LOCK prefix on a non-memory destination never reaches these handlers
/// (<see cref="InstructionTable.HandlerFor"/> maps it to #UD).
/// </summary>
internal static unsafe class Arithmetic
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Add, Forms(Mnemonic.Add));
        b.Add(&Adc, Forms(Mnemonic.Adc));
        b.Add(&Sub, Forms(Mnemonic.Sub));
        b.Add(&Sbb, Forms(Mnemonic.Sbb));
        b.Add(&Cmp, Forms(Mnemonic.Cmp));
        b.Add(&Inc, Forms(Mnemonic.Inc));
        b.Add(&Dec, Forms(Mnemonic.Dec));
        b.Add(&Neg, Forms(Mnemonic.Neg));
        b.Add(&Mul, Forms(Mnemonic.Mul));
        b.Add(&Imul, Forms(Mnemonic.Imul));
        b.Add(&Div, Forms(Mnemonic.Div));
        b.Add(&Idiv, Forms(Mnemonic.Idiv));
        b.Add(&Adcx, Code.Adcx_r32_rm32, Code.Adcx_r64_rm64);
        b.Add(&Adox, Code.Adox_r32_rm32, Code.Adox_r64_rm64);
        b.Add(&Mulx, Code.VEX_Mulx_r32_r32_rm32, Code.VEX_Mulx_r64_r64_rm64);
        b.Add(&Daa, Code.Daa);
        b.Add(&Das, Code.Das);
        b.Add(&Aaa, Code.Aaa);
        b.Add(&Aas, Code.Aas);
        b.Add(&Aam, Code.Aam_imm8);
        b.Add(&Aad, Code.Aad_imm8);
    }

    /// <summary>Every legacy-encoded form of a two-operand ALU mnemonic (r/m,r; r,r/m; r/m,imm; AL/AX/EAX/RAX,imm).</summary>
    internal static Code[] Forms(Mnemonic m) =>
        [.. Enum.GetValues<Code>().Where(c => c.Mnemonic() == m && c.Encoding() == EncodingKind.Legacy)];

    private static void Add(Cpu cpu, ref Instruction ins) => AddSub(cpu, ref ins, subtract: false, withCarry: false);

    private static void Sub(Cpu cpu, ref Instruction ins) => AddSub(cpu, ref ins, subtract: true, withCarry: false);

    private static void Adc(Cpu cpu, ref Instruction ins) => AddSub(cpu, ref ins, subtract: false, withCarry: true);

    private static void Sbb(Cpu cpu, ref Instruction ins) => AddSub(cpu, ref ins, subtract: true, withCarry: true);

    /// <summary>
    /// dst ± (src + carry-in) for ADD/SUB/ADC/SBB; with LOCK on a memory destination the update
    /// is one atomic read-modify-write. The lazy flags record the operands as given, plus the
    /// carry-in for ADC/SBB.
    /// </summary>
    private static void AddSub(Cpu cpu, ref Instruction ins, bool subtract, bool withCarry)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var mask = Cpu.SizeMask(size);
        var carry = withCarry && cpu.CF;
        var operand = src + (carry ? 1UL : 0);
        ulong dst;
        if (ins.HasLockPrefix && ins.Op0Kind == OpKind.Memory)
        {
            dst = cpu.AtomicUpdate(cpu.MemoryLinear(ref ins), size, operand, subtract ? &SubOp : &AddOp);
        }
        else
        {
            dst = cpu.ReadDest(ref ins, size, out var addr);
            cpu.WriteDest(ref ins, size, addr, (subtract ? dst - operand : dst + operand) & mask);
        }

        var res = (subtract ? dst - operand : dst + operand) & mask;
        if (withCarry)
        {
            cpu.SetLazyWithCarry(subtract ? FlagOp.Sbb : FlagOp.Adc, size, dst, src, res, carry);
        }
        else
        {
            cpu.SetLazy(subtract ? FlagOp.Sub : FlagOp.Add, size, dst, src, res);
        }
    }

    private static void Cmp(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var dst = cpu.ReadOp(ref ins, 0, size);
        var src = cpu.ReadOp(ref ins, 1, size);
        cpu.SetLazy(FlagOp.Sub, size, dst, src, (dst - src) & Cpu.SizeMask(size));
    }

    private static void Inc(Cpu cpu, ref Instruction ins) => Step(cpu, ref ins, FlagOp.Inc);

    private static void Dec(Cpu cpu, ref Instruction ins) => Step(cpu, ref ins, FlagOp.Dec);

    /// <summary>INC/DEC: ±1 with CF kept (SDM vol. 2 INC, DEC); LOCK makes the update atomic.</summary>
    private static void Step(Cpu cpu, ref Instruction ins, FlagOp op)
    {
        var size = Cpu.OpSize(ref ins);
        var mask = Cpu.SizeMask(size);
        var delta = op == FlagOp.Inc ? 1UL : ulong.MaxValue;
        ulong dst;
        if (ins.HasLockPrefix)
        {
            dst = cpu.AtomicUpdate(cpu.MemoryLinear(ref ins), size, delta, &AddOp);
        }
        else
        {
            dst = cpu.ReadDest(ref ins, size, out var addr);
            cpu.WriteDest(ref ins, size, addr, (dst + delta) & mask);
        }

        cpu.SetLazyKeepCarry(op, size, dst, (dst + delta) & mask);
    }

    private static void Neg(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var mask = Cpu.SizeMask(size);
        ulong dst;
        if (ins.HasLockPrefix)
        {
            dst = cpu.AtomicUpdate(cpu.MemoryLinear(ref ins), size, 0, &NegOp);
        }
        else
        {
            dst = cpu.ReadDest(ref ins, size, out var addr);
            cpu.WriteDest(ref ins, size, addr, (0 - dst) & mask);
        }

        cpu.SetLazy(FlagOp.Neg, size, 0, dst, (0 - dst) & mask);
    }

    /// <summary>
    /// MUL/IMUL: CF=OF say whether the upper half is significant (SDM). SF, ZF, AF and PF are
    /// undefined; we set SF/ZF/PF from the low half of the result and clear AF.
    /// </summary>
    private static void SetMulFlags(Cpu cpu, int size, ulong low, bool overflow)
    {
        var s = overflow ? Rflags.CF | Rflags.OF : 0;
        low &= Cpu.SizeMask(size);
        if (low == 0)
        {
            s |= Rflags.ZF;
        }

        if ((low >> ((size * 8) - 1)) != 0)
        {
            s |= Rflags.SF;
        }

        if (Cpu.Parity(low))
        {
            s |= Rflags.PF;
        }

        cpu.SetStatusFlags(s);
    }

    private static void Mul(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 0, size);
        switch (size)
        {
            case 1:
            {
                var r = (byte)cpu.Gpr[Cpu.RAX] * src;
                cpu.WriteGpr(Cpu.RAX, 2, r);
                SetMulFlags(cpu, 1, r, (r >> 8) != 0);
                break;
            }

            case 2:
            {
                var r = (ushort)cpu.Gpr[Cpu.RAX] * src;
                cpu.WriteGpr(Cpu.RAX, 2, r);
                cpu.WriteGpr(Cpu.RDX, 2, r >> 16);
                SetMulFlags(cpu, 2, r, (r >> 16) != 0);
                break;
            }

            case 4:
            {
                var r = (uint)cpu.Gpr[Cpu.RAX] * src;
                cpu.WriteGpr(Cpu.RAX, 4, r);
                cpu.WriteGpr(Cpu.RDX, 4, r >> 32);
                SetMulFlags(cpu, 4, r, (r >> 32) != 0);
                break;
            }

            default:
            {
                var hi = Math.BigMul(cpu.Gpr[Cpu.RAX], src, out var lo);
                cpu.Gpr[Cpu.RAX] = lo;
                cpu.Gpr[Cpu.RDX] = hi;
                SetMulFlags(cpu, 8, lo, hi != 0);
                break;
            }
        }
    }

    /// <summary>ADCX (ADX): unsigned add with carry through CF only; the other flags are unchanged.</summary>
    private static void Adcx(Cpu cpu, ref Instruction ins) => AddThroughFlag(cpu, ref ins, Rflags.CF, cpu.CF);

    /// <summary>ADOX (ADX): unsigned add with carry through OF only; the other flags are unchanged.</summary>
    private static void Adox(Cpu cpu, ref Instruction ins) => AddThroughFlag(cpu, ref ins, Rflags.OF, cpu.OF);

    private static void AddThroughFlag(Cpu cpu, ref Instruction ins, ulong flag, bool carryIn)
    {
        var size = Cpu.OpSize(ref ins);
        var a = cpu.ReadReg(ins.Op0Register);
        var b = cpu.ReadOp(ref ins, 1, size);
        var c = carryIn ? 1UL : 0;
        var res = (a + b + c) & Cpu.SizeMask(size);
        var carry = res < a || (c != 0 && res == a);
        cpu.WriteReg(ins.Op0Register, res);
        cpu.SetSomeFlags(flag, carry ? flag : 0);
    }

    /// <summary>MULX (BMI2): unsigned rDX × r/m into hi:lo without touching flags; with the same register for both, the high half wins.</summary>
    private static void Mulx(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 2, size);
        ulong hi, lo;
        if (size == 8)
        {
            hi = Math.BigMul(cpu.Gpr[Cpu.RDX], src, out lo);
        }
        else
        {
            var r = (uint)cpu.Gpr[Cpu.RDX] * src;
            hi = r >> 32;
            lo = (uint)r;
        }

        cpu.WriteReg(ins.Op1Register, lo);
        cpu.WriteReg(ins.Op0Register, hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SignExtend(ulong v, int size) => size switch
    {
        1 => (sbyte)v,
        2 => (short)v,
        4 => (int)v,
        _ => (long)v,
    };

    private static void Imul(Cpu cpu, ref Instruction ins)
    {
        if (ins.OpCount == 1)
        {
            var size = Cpu.OpSize(ref ins);
            var src = SignExtend(cpu.ReadOp(ref ins, 0, size), size);
            var a = SignExtend(cpu.Gpr[Cpu.RAX], size);
            switch (size)
            {
                case 1:
                {
                    var r = a * src;
                    cpu.WriteGpr(Cpu.RAX, 2, (ulong)r);
                    SetMulFlags(cpu, 1, (ulong)r, r != (sbyte)r);
                    break;
                }

                case 2:
                {
                    var r = a * src;
                    cpu.WriteGpr(Cpu.RAX, 2, (ulong)r);
                    cpu.WriteGpr(Cpu.RDX, 2, (ulong)(r >> 16));
                    SetMulFlags(cpu, 2, (ulong)r, r != (short)r);
                    break;
                }

                case 4:
                {
                    var r = a * src;
                    cpu.WriteGpr(Cpu.RAX, 4, (ulong)r);
                    cpu.WriteGpr(Cpu.RDX, 4, (ulong)(r >> 32));
                    SetMulFlags(cpu, 4, (ulong)r, r != (int)r);
                    break;
                }

                default:
                {
                    var hi = Math.BigMul(a, src, out var lo);
                    cpu.Gpr[Cpu.RAX] = (ulong)lo;
                    cpu.Gpr[Cpu.RDX] = (ulong)hi;
                    SetMulFlags(cpu, 8, (ulong)lo, hi != (lo >> 63));
                    break;
                }
            }

            return;
        }

        {
            // IMUL r, r/m and IMUL r, r/m, imm: the product is truncated to the destination.
            var size = Cpu.OpSize(ref ins);
            long a, b;
            if (ins.OpCount == 2)
            {
                a = SignExtend(cpu.ReadReg(ins.Op0Register), size);
                b = SignExtend(cpu.ReadOp(ref ins, 1, size), size);
            }
            else
            {
                a = SignExtend(cpu.ReadOp(ref ins, 1, size), size);
                b = SignExtend(ins.GetImmediate(2), size);
            }

            ulong low;
            bool overflow;
            if (size == 8)
            {
                var hi = Math.BigMul(a, b, out var lo);
                low = (ulong)lo;
                overflow = hi != (lo >> 63);
            }
            else
            {
                var r = a * b;
                low = (ulong)r & Cpu.SizeMask(size);
                overflow = r != SignExtend(low, size);
            }

            cpu.WriteReg(ins.Op0Register, low);
            SetMulFlags(cpu, size, low, overflow);
        }
    }

    /// <summary>DIV: #DE on a zero divisor or a quotient that does not fit (SDM DIV). Flags are undefined and left unchanged.</summary>
    private static void Div(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var d = cpu.ReadOp(ref ins, 0, size);
        if (d == 0)
        {
            throw new GuestFault(Vector.DE);
        }

        switch (size)
        {
            case 1:
            {
                var n = (ushort)cpu.Gpr[Cpu.RAX];
                var q = n / d;
                if (q > 0xFF)
                {
                    throw new GuestFault(Vector.DE);
                }

                cpu.WriteGpr(Cpu.RAX, 2, q | ((n % d) << 8));
                break;
            }

            case 2:
            case 4:
            {
                var bits = size * 8;
                var n = (cpu.ReadGpr(Cpu.RDX, size) << bits) | cpu.ReadGpr(Cpu.RAX, size);
                var q = n / d;
                if (q > Cpu.SizeMask(size))
                {
                    throw new GuestFault(Vector.DE);
                }

                cpu.WriteGpr(Cpu.RAX, size, q);
                cpu.WriteGpr(Cpu.RDX, size, n % d);
                break;
            }

            default:
            {
                var hi = cpu.Gpr[Cpu.RDX];
                if (hi >= d)
                {
                    throw new GuestFault(Vector.DE);
                }

                var n = new UInt128(hi, cpu.Gpr[Cpu.RAX]);
                var (q, r) = UInt128.DivRem(n, d);
                cpu.Gpr[Cpu.RAX] = (ulong)q;
                cpu.Gpr[Cpu.RDX] = (ulong)r;
                break;
            }
        }
    }

    /// <summary>IDIV: quotient truncated toward zero, remainder takes the dividend's sign; #DE when the quotient is out of range.</summary>
    private static void Idiv(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var d = SignExtend(cpu.ReadOp(ref ins, 0, size), size);
        if (d == 0)
        {
            throw new GuestFault(Vector.DE);
        }

        if (size == 8)
        {
            var n = (Int128)new UInt128(cpu.Gpr[Cpu.RDX], cpu.Gpr[Cpu.RAX]);
            var (q, r) = Int128.DivRem(n, d);
            if (q > long.MaxValue || q < long.MinValue)
            {
                throw new GuestFault(Vector.DE);
            }

            cpu.Gpr[Cpu.RAX] = (ulong)(long)q;
            cpu.Gpr[Cpu.RDX] = (ulong)(long)r;
            return;
        }

        long dividend = size == 1
            ? (short)cpu.Gpr[Cpu.RAX]
            : (long)(((ulong)SignExtend(cpu.Gpr[Cpu.RDX], size) << (size * 8)) | cpu.ReadGpr(Cpu.RAX, size));
        var quo = dividend / d;
        var rem = dividend % d;
        if (quo != SignExtend((ulong)quo, size))
        {
            throw new GuestFault(Vector.DE);
        }

        if (size == 1)
        {
            cpu.WriteGpr(Cpu.RAX, 2, ((ulong)quo & 0xFF) | (((ulong)rem & 0xFF) << 8));
        }
        else
        {
            cpu.WriteGpr(Cpu.RAX, size, (ulong)quo);
            cpu.WriteGpr(Cpu.RDX, size, (ulong)rem);
        }
    }

    // ---- BCD (16/32-bit modes only; Iced does not decode them in 64-bit mode) ----

    private static void SetSzp(ref ulong s, byte v)
    {
        if (v == 0)
        {
            s |= Rflags.ZF;
        }

        if ((v & 0x80) != 0)
        {
            s |= Rflags.SF;
        }

        if (Cpu.Parity(v))
        {
            s |= Rflags.PF;
        }
    }

    /// <summary>DAA (SDM pseudocode); OF is undefined and cleared.</summary>
    private static void Daa(Cpu cpu, ref Instruction ins)
    {
        var al = (byte)cpu.Gpr[Cpu.RAX];
        var oldAl = al;
        var oldCf = cpu.CF;
        ulong s = 0;
        if ((al & 0xF) > 9 || cpu.AF)
        {
            al += 6;
            s |= Rflags.AF;
        }

        if (oldAl > 0x99 || oldCf)
        {
            al += 0x60;
            s |= Rflags.CF;
        }

        SetSzp(ref s, al);
        cpu.WriteGpr(Cpu.RAX, 1, al);
        cpu.SetStatusFlags(s);
    }

    private static void Das(Cpu cpu, ref Instruction ins)
    {
        var al = (byte)cpu.Gpr[Cpu.RAX];
        var oldAl = al;
        var oldCf = cpu.CF;
        ulong s = 0;
        if ((al & 0xF) > 9 || cpu.AF)
        {
            al -= 6;
            s |= Rflags.AF;
        }

        if (oldAl > 0x99 || oldCf)
        {
            al -= 0x60;
            s |= Rflags.CF;
        }

        SetSzp(ref s, al);
        cpu.WriteGpr(Cpu.RAX, 1, al);
        cpu.SetStatusFlags(s);
    }

    /// <summary>AAA: AX += 0x106 on adjust (as Intel implements it), AL &amp;= 0xF.</summary>
    private static void Aaa(Cpu cpu, ref Instruction ins)
    {
        var ax = (ushort)cpu.Gpr[Cpu.RAX];
        ulong s = 0;
        if ((ax & 0xF) > 9 || cpu.AF)
        {
            ax += 0x106;
            s = Rflags.AF | Rflags.CF;
        }

        cpu.WriteGpr(Cpu.RAX, 2, (ulong)(ax & 0xFF0F));
        cpu.SetStatusFlags(s);
    }

    private static void Aas(Cpu cpu, ref Instruction ins)
    {
        var ax = (ushort)cpu.Gpr[Cpu.RAX];
        ulong s = 0;
        if ((ax & 0xF) > 9 || cpu.AF)
        {
            ax -= 6;
            ax -= 0x100;
            s = Rflags.AF | Rflags.CF;
        }

        cpu.WriteGpr(Cpu.RAX, 2, (ulong)(ax & 0xFF0F));
        cpu.SetStatusFlags(s);
    }

    private static void Aam(Cpu cpu, ref Instruction ins)
    {
        var imm = ins.Immediate8;
        if (imm == 0)
        {
            throw new GuestFault(Vector.DE);
        }

        var al = (byte)cpu.Gpr[Cpu.RAX];
        var r = (byte)(al % imm);
        cpu.WriteGpr(Cpu.RAX, 2, ((ulong)(al / imm) << 8) | r);
        ulong s = 0;
        SetSzp(ref s, r);
        cpu.SetStatusFlags(s);
    }

    private static void Aad(Cpu cpu, ref Instruction ins)
    {
        var ax = cpu.Gpr[Cpu.RAX];
        var al = (byte)(((byte)ax + ((byte)(ax >> 8) * ins.Immediate8)) & 0xFF);
        cpu.WriteGpr(Cpu.RAX, 2, al);
        ulong s = 0;
        SetSzp(ref s, al);
        cpu.SetStatusFlags(s);
    }

    internal static ulong AddOp(ulong a, ulong b, int size) => a + b;

    internal static ulong NegOp(ulong a, ulong b, int size) => 0 - a;

    internal static ulong SubOp(ulong a, ulong b, int size) => a - b;
}
