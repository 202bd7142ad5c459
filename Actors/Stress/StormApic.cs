using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Stress;

/// <summary>Which LAPIC interface the storm guests program: x2APIC MSRs or the xAPIC MMIO page.</summary>
public enum StormApicMode
{
    /// <summary>WRMSR/RDMSR to 0x800-0x8FF (SDM 11.12); ICR is one 64-bit write to 0x830.</summary>
    X2Apic,

    /// <summary>
    /// Loads and stores to the APIC page at 0xFEE00000 (SDM 11.4.1); an IPI is ICR high (0x310,
    /// destination in 31:24) then ICR low (0x300), which sends. Every access is an APIC-access exit.
    /// </summary>
    XApic,
}

/// <summary>
/// Emits the storm guests' LAPIC accesses for either interface. The guests run in real mode; for
/// the xAPIC page above 1 MiB each vCPU first goes "unreal" (DS keeps a 4 GiB limit from a flat
/// descriptor after returning to real mode, SDM 9.9.2 / 20.1.1), then reaches the page through
/// DS (base 0x10000, the globals) plus EBP = 0xFEE00000 − 0x10000, kept for the whole run.
/// </summary>
internal sealed class StormApic(StormApicMode mode)
{
    public const uint Id = 0x20, Tpr = 0x80, Eoi = 0xB0, Svr = 0xF0, IcrLow = 0x300, IcrHigh = 0x310, Lvtt = 0x320, Tmict = 0x380, Tdcr = 0x3E0;

    /// <summary>GDTR (limit, base) then the GDT: null and a flat 4 GiB data descriptor, for unreal mode.</summary>
    public const ulong Gdtr = 0x800, Gdt = 0x808;

    private const uint PageFromGlobals = 0xFEE0_0000u - (uint)StormLayout.Globals;

    public bool XApic => mode == StormApicMode.XApic;

    /// <summary>Before DS is loaded with the globals: the flat DS limit (xAPIC). Run once per boot: INIT reloads the segments.</summary>
    public void EnterUnrealMode(Assembler a)
    {
        if (!XApic)
        {
            return;
        }

        a.xor(ax, ax);
        a.mov(ds, ax);
        a.lgdt(__[(ulong)Gdtr]);
        a.mov(eax, cr0);
        a.or(al, 1);
        a.mov(cr0, eax);
        a.mov(ax, 8);
        a.mov(ds, ax); // the descriptor cache gets base 0, limit 4 GiB
        a.mov(eax, cr0);
        a.and(al, 0xFE);
        a.mov(cr0, eax); // back to real mode; DS keeps its limit
    }

    /// <summary>With DS = globals: enable the interface (x2APIC: EN | EXTD; xAPIC: it is on from reset, point EBP at the page).</summary>
    public void Enable(Assembler a)
    {
        if (XApic)
        {
            a.mov(ebp, PageFromGlobals);
            return;
        }

        a.mov(ecx, 0x1Bu); // IA32_APIC_BASE
        a.rdmsr();
        a.or(eax, 0xC00u); // EN | EXTD: x2APIC (keeps the BSP bit)
        a.wrmsr();
    }

    /// <summary>ESI = own APIC ID (x2APIC ID register; xAPIC ID[31:24]).</summary>
    public void ReadIdToEsi(Assembler a)
    {
        if (XApic)
        {
            a.mov(esi, __dword_ptr.ds[ebp + Id]);
            a.shr(esi, 24);
            return;
        }

        a.mov(ecx, Msr(Id));
        a.rdmsr();
        a.mov(esi, eax);
    }

    /// <summary>Writes a constant (clobbers EAX, ECX, EDX).</summary>
    public void Write(Assembler a, uint register, uint value)
    {
        a.mov(eax, value);
        WriteEax(a, register);
    }

    /// <summary>Writes EAX (clobbers ECX, EDX).</summary>
    public void WriteEax(Assembler a, uint register)
    {
        if (XApic)
        {
            a.mov(__dword_ptr.ds[ebp + register], eax);
            return;
        }

        a.mov(ecx, Msr(register));
        a.xor(edx, edx);
        a.wrmsr();
    }

    /// <summary>An IPI to the APIC ID in EDI, physical destination (clobbers EAX, ECX, EDX).</summary>
    public void SendTo(Assembler a, uint icrLow)
    {
        if (XApic)
        {
            a.mov(eax, edi);
            a.shl(eax, 24);
            a.mov(__dword_ptr.ds[ebp + IcrHigh], eax);
            a.mov(__dword_ptr.ds[ebp + IcrLow], icrLow);
            return;
        }

        a.mov(ecx, Msr(IcrLow));
        a.mov(eax, icrLow);
        a.mov(edx, edi);
        a.wrmsr();
    }

    /// <summary>An IPI with a destination shorthand in <paramref name="icrLow"/> (self, all, all but self).</summary>
    public void SendShorthand(Assembler a, uint icrLow)
    {
        if (XApic)
        {
            a.mov(__dword_ptr.ds[ebp + IcrLow], icrLow);
            return;
        }

        Write(a, IcrLow, icrLow);
    }

    /// <summary>A self-IPI through x2APIC SELF_IPI (0x83F); xAPIC has no such register, so the ICR self shorthand.</summary>
    public void SelfIpi(Assembler a, byte vector)
    {
        if (XApic)
        {
            SendShorthand(a, 0x44000u | vector);
            return;
        }

        a.mov(ecx, 0x83Fu);
        a.mov(eax, (uint)vector);
        a.xor(edx, edx);
        a.wrmsr();
    }

    private static uint Msr(uint register) => 0x800u + (register >> 4);
}
