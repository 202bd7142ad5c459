using System.Numerics;
using System.Runtime.CompilerServices;

namespace ActorVm.Hardware.X86;

public static class Rflags
{
    public const ulong CF = 1, Reserved1 = 2, PF = 4, AF = 0x10, ZF = 0x40, SF = 0x80, TF = 0x100, IF = 0x200, DF = 0x400, OF = 0x800;
    public const ulong IOPL = 0x3000, NT = 0x4000, RF = 0x10000, VM = 0x20000, AC = 0x40000, VIF = 0x80000, VIP = 0x100000, ID = 0x200000;

    /// <summary>The six status flags the arithmetic instructions write.</summary>
    public const ulong Status = CF | PF | AF | ZF | SF | OF;
}

/// <summary>What produced the status flags, for computing them lazily.</summary>
public enum FlagOp : byte
{
    /// <summary>The status flags in the flags word are current.</summary>
    None,
    Add,
    Adc,
    Sub,
    Sbb,
    /// <summary>AND/OR/XOR/TEST: CF=OF=0, AF=0 (undefined by the SDM; 0 on Intel hardware).</summary>
    Logic,
    /// <summary>INC: like ADD with 1, CF unchanged (kept in the carry-in slot).</summary>
    Inc,
    Dec,
    Neg,
    /// <summary>SHL by a count of 1..size-1 (b holds the count): CF is the last bit out, OF = MSB xor CF, AF = 0.</summary>
    Shl,
    /// <summary>SHR by 1..size-1: CF is the last bit out, OF the original MSB for a count of 1, AF = 0.</summary>
    Shr,
    /// <summary>SAR by 1..size-1: CF is the last bit out, OF = 0, AF = 0.</summary>
    Sar,
}

/// <summary>
/// RFLAGS with lazily computed status flags (the Aeon/Bochs technique): an arithmetic
/// instruction records its operands and result; CF, ZF, ... are derived only when read.
/// </summary>
public sealed partial class Cpu
{
    private ulong _flags = 2;
    private FlagOp _lazyOp;
    private byte _lazySize;
    private ulong _lazyA, _lazyB, _lazyRes;

    // CF of the lazy record, computed when the record is made (one compare for ADD/SUB, a bit
    // for shifts): INC and DEC, which keep CF, then leave it alone instead of evaluating the
    // previous record's CF through the switch on its operation (a loop's DEC after a shift or
    // an ADD did that on every iteration), and CF readers (JB, ADC, SETB) read one field.
    private bool _lazyCf;

    /// <summary>Records an arithmetic result; a, b and res must already be truncated to <paramref name="size"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetLazy(FlagOp op, int size, ulong a, ulong b, ulong res)
    {
        // Folds to the one case when inlined with a constant op.
        _lazyCf = op switch
        {
            FlagOp.Add => res < a,
            FlagOp.Sub => a < b,
            FlagOp.Neg => b != 0,
            FlagOp.Shl => ((a >> ((size * 8) - (int)b)) & 1) != 0,
            FlagOp.Shr or FlagOp.Sar => ((a >> ((int)b - 1)) & 1) != 0,
            FlagOp.Inc or FlagOp.Dec => _lazyCf,
            _ => false,
        };
        _lazyOp = op;
        _lazySize = (byte)size;
        _lazyA = a;
        _lazyB = b;
        _lazyRes = res;
    }

    /// <summary>INC/DEC keep CF: the previous record's CF is already in its slot (or in the flags word).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetLazyKeepCarry(FlagOp op, int size, ulong a, ulong res)
    {
        if (_lazyOp == FlagOp.None)
        {
            _lazyCf = (_flags & Rflags.CF) != 0;
        }

        SetLazy(op, size, a, 1, res);
    }

    /// <summary>For ADC/SBB: the carry that went in.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetLazyWithCarry(FlagOp op, int size, ulong a, ulong b, ulong res, bool carryIn)
    {
        SetLazy(op, size, a, b, res);
        _lazyCf = op == FlagOp.Adc
            ? res < a || (carryIn && res == a)
            : a < b || (carryIn && a == b);
    }

    /// <summary>Sets the status flags eagerly (shifts, multiplies, BCD …); <paramref name="status"/> bits outside <see cref="Rflags.Status"/> are ignored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetStatusFlags(ulong status)
    {
        _flags = (_flags & ~Rflags.Status) | (status & Rflags.Status);
        _lazyOp = FlagOp.None;
    }

    /// <summary>Sets or clears selected status flags, keeping the others.</summary>
    public void SetFlag(ulong flag, bool value)
    {
        Materialize();
        _flags = value ? _flags | flag : _flags & ~flag;
    }

    /// <summary>Replaces the status flags in <paramref name="mask"/> with those in <paramref name="values"/>, keeping the rest (rotates, BT, BSF).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetSomeFlags(ulong mask, ulong values)
    {
        Materialize();
        _flags = (_flags & ~mask) | (values & mask);
    }

    /// <summary>The whole RFLAGS value.</summary>
    public ulong Flags
    {
        get
        {
            Materialize();
            return _flags;
        }
    }

    /// <summary>Writes RFLAGS without any privilege filtering (loaders, IRET after filtering).</summary>
    public void SetFlagsRaw(ulong value)
    {
        _lazyOp = FlagOp.None;
        _flags = (value & 0x3F7FD5) | Rflags.Reserved1;
    }

    public bool IF => (_flags & Rflags.IF) != 0;
    public bool DF => (_flags & Rflags.DF) != 0;
    public bool TF => (_flags & Rflags.TF) != 0;
    public int Iopl => (int)((_flags >> 12) & 3);

    /// <summary>Sets a non-status flag (IF, DF, TF, AC, ...); does not disturb the lazy state.</summary>
    public void SetControlFlag(ulong flag, bool value)
    {
        _flags = value ? _flags | flag : _flags & ~flag;
    }

    private void Materialize()
    {
        if (_lazyOp != FlagOp.None)
        {
            _flags = (_flags & ~Rflags.Status) | ComputeStatus();
            _lazyOp = FlagOp.None;
        }
    }

    private ulong ComputeStatus()
    {
        ulong s = 0;
        if (CF) s |= Rflags.CF;
        if (PF) s |= Rflags.PF;
        if (AF) s |= Rflags.AF;
        if (ZF) s |= Rflags.ZF;
        if (SF) s |= Rflags.SF;
        if (OF) s |= Rflags.OF;
        return s;
    }

    private ulong SignBit => 1UL << ((_lazySize * 8) - 1);

    public bool CF
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _lazyOp == FlagOp.None ? (_flags & Rflags.CF) != 0 : _lazyCf;
    }

    public bool ZF
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _lazyOp == FlagOp.None ? (_flags & Rflags.ZF) != 0 : _lazyRes == 0;
    }

    public bool SF
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _lazyOp == FlagOp.None ? (_flags & Rflags.SF) != 0 : (_lazyRes & SignBit) != 0;
    }

    public bool PF
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _lazyOp == FlagOp.None ? (_flags & Rflags.PF) != 0 : Parity(_lazyRes);
    }

    public bool AF => _lazyOp switch
    {
        FlagOp.None => (_flags & Rflags.AF) != 0,
        FlagOp.Logic or FlagOp.Shl or FlagOp.Shr or FlagOp.Sar => false,
        _ => ((_lazyA ^ _lazyB ^ _lazyRes) & 0x10) != 0,
    };

    public bool OF => _lazyOp switch
    {
        FlagOp.None => (_flags & Rflags.OF) != 0,
        FlagOp.Add or FlagOp.Adc or FlagOp.Inc => ((_lazyA ^ _lazyRes) & (_lazyB ^ _lazyRes) & SignBit) != 0,
        FlagOp.Sub or FlagOp.Sbb or FlagOp.Dec => ((_lazyA ^ _lazyB) & (_lazyA ^ _lazyRes) & SignBit) != 0,
        FlagOp.Neg => _lazyRes == SignBit,
        FlagOp.Shl => ((_lazyRes & SignBit) != 0) != CF,
        FlagOp.Shr => _lazyB == 1 && (_lazyA & SignBit) != 0,
        _ => false,
    };

    /// <summary>Even parity of the low byte (PF).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Parity(ulong value) => (BitOperations.PopCount(value & 0xFF) & 1) == 0;

    /// <summary>Evaluates a condition code (the tttn field of Jcc/SETcc/CMOVcc, SDM vol. 2 appendix B.1.4.7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Condition(int cc) => cc switch
    {
        0 => OF,
        1 => !OF,
        2 => CF,
        3 => !CF,
        4 => ZF,
        5 => !ZF,
        6 => CF || ZF,
        7 => !CF && !ZF,
        8 => SF,
        9 => !SF,
        10 => PF,
        11 => !PF,
        12 => SF != OF,
        13 => SF == OF,
        14 => ZF || SF != OF,
        _ => !ZF && SF == OF,
    };
}
