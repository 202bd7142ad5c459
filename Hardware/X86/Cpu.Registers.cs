using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86;

public static class Cr0Bits
{
    public const ulong PE = 1, MP = 2, EM = 4, TS = 8, ET = 0x10, NE = 0x20, WP = 0x10000, AM = 0x40000, NW = 0x20000000, CD = 0x40000000, PG = 0x80000000;
}

public static class Cr4Bits
{
    public const ulong VME = 1, PVI = 2, TSD = 4, DE = 8, PSE = 0x10, PAE = 0x20, MCE = 0x40, PGE = 0x80, PCE = 0x100, OSFXSR = 0x200, OSXMMEXCPT = 0x400, UMIP = 0x800, FSGSBASE = 0x10000, PCIDE = 0x20000, OSXSAVE = 0x40000, SMEP = 0x100000, SMAP = 0x200000;
}

public static class EferBits
{
    public const ulong SCE = 1, LME = 0x100, LMA = 0x400, NXE = 0x800;
}

public static class MsrApicBase
{
    public const ulong Bsp = 1 << 8, X2Apic = 1 << 10, Enable = 1 << 11;
}

public sealed unsafe partial class Cpu
{
    /// <summary>RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15 (encoding order).</summary>
    // Pinned, so the fast forms reach them through a raw pointer (no null or bounds check).
    public readonly ulong[] Gpr = GC.AllocateArray<ulong>(16, pinned: true);

    public readonly Segment[] Seg = GC.AllocateArray<Segment>(6, pinned: true);

    private readonly ulong* _gpr;
    private readonly Segment* _seg;

    /// <summary>A GPR by an index the decoder produced (0-15), without the bounds check (the fast forms).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref ulong GprAt(int index) => ref _gpr[index];

    /// <summary>A segment's base by a <see cref="SegReg"/> index the decoder produced (0-5), without the bounds check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong SegmentBase(int index) => _seg[index].Base;

    public readonly ulong[] Dr = new ulong[4];

    /// <summary>XMM0-15 as two 64-bit halves each.</summary>
    public readonly UInt128[] Xmm = new UInt128[16];

    public readonly FpuState Fpu = new();

    public readonly MsrFile Msrs = new();

    public ulong Rip;
    public ulong Cr0, Cr2, Cr3, Cr4, Efer;
    public ulong Dr6, Dr7;
    public uint Mxcsr;
    public DescriptorTable Gdtr, Idtr;
    public Segment Ldtr, Tr;

    /// <summary>IA32_APIC_BASE; owned here because CPUID.1:EDX.APIC tracks its enable bit.</summary>
    public ulong ApicBase;

    /// <summary>TPR mirror read and written by MOV CR8 (CR8 = TPR[7:4]); the LAPIC owns the truth.</summary>
    public ulong Cr8;

    /// <summary>Code-segment default size in bits: 16, 32 or 64 (what the decoder is created with).</summary>
    public int Bitness { get; private set; }

    /// <summary>Stack-address size in bytes (SS.B, or 8 in 64-bit mode).</summary>
    public int StackSize { get; private set; }

    public int Cpl => Seg[(int)SegReg.CS].Selector & 3 & (ProtectedMode ? 3 : 0);

    public bool ProtectedMode => (Cr0 & Cr0Bits.PE) != 0;
    public bool PagingEnabled => (Cr0 & Cr0Bits.PG) != 0;
    public bool LongModeActive => (Efer & EferBits.LMA) != 0;
    public bool Is64BitMode => Bitness == 64;

    /// <summary>True while halted (HLT retired and nothing has woken it).</summary>
    public bool Halted { get; set; }

    /// <summary>
    /// Recomputes the execution mode after anything that can change it (CR0, EFER, CS, SS).
    /// Ends the current block so the next instruction is decoded for the new mode.
    /// </summary>
    public void UpdateMode()
    {
        ref var cs = ref Seg[(int)SegReg.CS];
        Bitness = !ProtectedMode ? 16 : LongModeActive && cs.Long ? 64 : cs.Big ? 32 : 16;
        StackSize = Bitness == 64 ? 8 : ProtectedMode && Seg[(int)SegReg.SS].Big ? 4 : 2;
        if (!ProtectedMode)
        {
            // Real mode: CPL 0 whatever the selector's low bits say.
            cs.Attributes = (ushort)(cs.Attributes & ~0x60);
        }

        TranslationEpoch++;
        _breakBlock = true;
    }

    // ---- register access by Iced register ----

    private static readonly int RegisterCount = (int)Enum.GetValues<Register>().Max() + 1;

    /// <summary>Per Iced register: GPR index, bit shift (8 for AH..BH), value mask, bits kept on write.</summary>
    private static readonly (byte Index, byte Shift, byte Width, ulong Mask, ulong Keep)[] RegInfo = BuildRegInfo();

    private static (byte, byte, byte, ulong, ulong)[] BuildRegInfo()
    {
        var t = new (byte, byte, byte, ulong, ulong)[RegisterCount];
        for (var r = Register.AL; r <= Register.R15; r++)
        {
            t[(int)r] = r switch
            {
                >= Register.AH and <= Register.BH => ((byte)(r - Register.AH), 8, 1, 0xFF, ~0xFF00UL),
                >= Register.AL and <= Register.R15L => ((byte)(r - Register.AL), 0, 1, 0xFF, ~0xFFUL),
                >= Register.AX and <= Register.R15W => ((byte)(r - Register.AX), 0, 2, 0xFFFF, ~0xFFFFUL),
                // 32-bit writes zero-extend into the full register (SDM vol. 1 3.4.1.1): keep nothing.
                >= Register.EAX and <= Register.R15D => ((byte)(r - Register.EAX), 0, 4, 0xFFFF_FFFF, 0),
                _ => ((byte)(r - Register.RAX), 0, 8, ulong.MaxValue, 0),
            };
        }

        return t;
    }

    /// <summary>Reads a general-purpose register of any width (AH..BH included), zero-extended.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadReg(Register r)
    {
        ref readonly var info = ref RegInfo[(int)r];
        return (Gpr[info.Index] >> info.Shift) & info.Mask;
    }

    /// <summary>
    /// Writes a general-purpose register with x86's width rules: 8/16-bit writes merge, 32-bit
    /// writes zero-extend to 64 bits (SDM vol. 1 3.4.1.1).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteReg(Register r, ulong value)
    {
        ref readonly var info = ref RegInfo[(int)r];
        ref var g = ref Gpr[info.Index];
        g = (g & info.Keep) | ((value & info.Mask) << info.Shift);
    }

    /// <summary>Width in bytes of a general-purpose register (1 for AH..BH).</summary>
    public static int RegisterWidth(Register r) => RegInfo[(int)r].Width;

    /// <summary>Writes a register selected by encoding index and width (string ops, MUL/DIV, PUSHA).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteGpr(int index, int size, ulong value)
    {
        ref var g = ref Gpr[index];
        g = size switch
        {
            1 => (g & ~0xFFUL) | (byte)value,
            2 => (g & ~0xFFFFUL) | (ushort)value,
            4 => (uint)value,
            _ => value,
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadGpr(int index, int size) => Gpr[index] & SizeMask(size);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SizeMask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    public const int RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7;
}
