namespace ActorVm.Hardware.X86;

/// <summary>
/// Control-register writes with the architectural checks of MOV CRn (SDM vol. 2 MOV—Move
/// to/from Control Registers; vol. 3 2.5 and 9.8.5 for entering and leaving IA-32e mode).
/// </summary>
public sealed partial class Cpu
{
    private const ulong Cr0Writable = Cr0Bits.PE | Cr0Bits.MP | Cr0Bits.EM | Cr0Bits.TS | Cr0Bits.ET | Cr0Bits.NE
        | Cr0Bits.WP | Cr0Bits.AM | Cr0Bits.NW | Cr0Bits.CD | Cr0Bits.PG;

    /// <summary>CR4 bits the interpreter implements; setting any other bit is #GP.</summary>
    public const ulong Cr4Supported = Cr4Bits.TSD | Cr4Bits.DE | Cr4Bits.PSE | Cr4Bits.PAE | Cr4Bits.PGE
        | Cr4Bits.OSFXSR | Cr4Bits.OSXMMEXCPT;

    /// <summary>MOV CR0 (and LMSW/CLTS): #GP on reserved bits, PG without PE, NW without CD, and bad long-mode transitions.</summary>
    public void WriteCr0(ulong value)
    {
        if ((value >> 32) != 0)
        {
            throw GuestFault.Gp();
        }

        // Reserved bits 31:0 are ignored (SDM 2.5); ET is hardwired to 1.
        value = (value & Cr0Writable) | Cr0Bits.ET;
        if ((value & Cr0Bits.PG) != 0 && (value & Cr0Bits.PE) == 0)
        {
            throw GuestFault.Gp();
        }

        if ((value & Cr0Bits.NW) != 0 && (value & Cr0Bits.CD) == 0)
        {
            throw GuestFault.Gp();
        }

        var enablingPaging = (value & Cr0Bits.PG) != 0 && !PagingEnabled;
        var disablingPaging = (value & Cr0Bits.PG) == 0 && PagingEnabled;
        var efer = Efer;
        if (enablingPaging && (Efer & EferBits.LME) != 0)
        {
            // Activating IA-32e mode (SDM 9.8.5): needs PAE, and not from a 64-bit code segment.
            if ((Cr4 & Cr4Bits.PAE) == 0 || Seg[(int)SegReg.CS].Long)
            {
                throw GuestFault.Gp();
            }

            efer |= EferBits.LMA;
        }
        else if (disablingPaging && LongModeActive)
        {
            // Leaving IA-32e mode is only possible from compatibility mode (SDM 9.8.5.4).
            if (Is64BitMode)
            {
                throw GuestFault.Gp();
            }

            efer &= ~EferBits.LMA;
        }

        var changed = Cr0 ^ value;
        Cr0 = value;
        Efer = efer;
        if ((changed & (Cr0Bits.PG | Cr0Bits.PE | Cr0Bits.WP | Cr0Bits.CD)) != 0)
        {
            FlushTlb();
        }

        UpdateMode();
    }

    /// <summary>MOV CR3: #GP for bits above MAXPHYADDR in long mode; flushes the TLB (no PCID, no global-page retention).</summary>
    public void WriteCr3(ulong value)
    {
        if (LongModeActive && (value & ~Model.PhysicalAddressMask) != 0)
        {
            throw GuestFault.Gp();
        }

        Cr3 = LongModeActive ? value : (uint)value;
        FlushTlb();
        BreakBlock();
    }

    /// <summary>MOV CR4: #GP for unsupported bits and for clearing PAE in IA-32e mode.</summary>
    public void WriteCr4(ulong value)
    {
        if ((value & ~Cr4Supported) != 0)
        {
            throw GuestFault.Gp();
        }

        if (LongModeActive && (value & Cr4Bits.PAE) == 0)
        {
            throw GuestFault.Gp();
        }

        var changed = Cr4 ^ value;
        Cr4 = value;
        if ((changed & (Cr4Bits.PSE | Cr4Bits.PAE | Cr4Bits.PGE)) != 0)
        {
            FlushTlb();
        }

        UpdateMode();
    }

    /// <summary>MOV CR8: the task-priority class (TPR[7:4]); bits 63:4 are reserved.</summary>
    public void WriteCr8(ulong value)
    {
        if ((value & ~0xFUL) != 0)
        {
            throw GuestFault.Gp();
        }

        Cr8 = value;
    }
}
