namespace ActorVm.Hardware.X86;

/// <summary>
/// The MSRs the processor core implements itself. The APIC's MSRs (IA32_APIC_BASE writes,
/// x2APIC 0x800-0x8FF, TSC_DEADLINE) belong to the local APIC and are routed there by the exit
/// handler; <see cref="IsApicMsr"/> tells which.
/// </summary>
public sealed partial class Cpu
{
    /// <summary>Guest TSC = clock + IA32_TSC_ADJUST-style offset written through MSR 0x10.</summary>
    public long TscOffset { get; set; }

    public ulong ReadTsc() => (ulong)((long)Clock.ReadTsc() + TscOffset);

    public static bool IsApicMsr(uint index) => index == Msr.ApicBase || index == Msr.TscDeadline || Msr.IsX2Apic(index);

    /// <summary>RDMSR semantics for core MSRs; false means #GP(0).</summary>
    public bool TryReadMsr(uint index, out ulong value)
    {
        switch (index)
        {
            case Msr.Tsc: value = ReadTsc(); return true;
            case Msr.ApicBase: value = ApicBase; return true;
            case Msr.Efer: value = Efer; return true;
            case Msr.FsBase: value = Seg[(int)SegReg.FS].Base; return true;
            case Msr.GsBase: value = Seg[(int)SegReg.GS].Base; return true;
            case Msr.Star or Msr.Lstar or Msr.Cstar or Msr.Fmask or Msr.KernelGsBase or Msr.TscAux
                or Msr.SysenterCs or Msr.SysenterEsp or Msr.SysenterEip or Msr.Pat or Msr.MiscEnable
                or Msr.MtrrDefType or Msr.SpecCtrl or Msr.TscAdjust or Msr.McgStatus or Msr.BiosSignId:
                value = Msrs[index];
                return true;
            case Msr.FeatureControl: value = 1; return true; // locked, VMX off
            case Msr.Mtrrcap: value = 0; return true;
            case Msr.McgCap: value = 0; return true;
            default:
                if (index is >= 0x200 and <= 0x20F or >= 0x250 and <= 0x26F)
                {
                    value = Msrs[index]; // MTRR ranges: storage only
                    return true;
                }

                value = 0;
                return false;
        }
    }

    /// <summary>WRMSR semantics for core MSRs, with the reserved-bit #GP checks; false means #GP(0).</summary>
    public bool TryWriteMsr(uint index, ulong value)
    {
        switch (index)
        {
            case Msr.Tsc:
            {
                // A TSC write moves IA32_TSC_ADJUST by the same delta (SDM 17.17.3).
                var delta = (long)value - (long)ReadTsc();
                TscOffset += delta;
                Msrs[Msr.TscAdjust] = (ulong)((long)Msrs[Msr.TscAdjust] + delta);
                return true;
            }

            case Msr.TscAdjust:
                // IA32_TSC_ADJUST: the TSC moves by the change of the adjustment.
                TscOffset += (long)value - (long)Msrs[Msr.TscAdjust];
                Msrs[Msr.TscAdjust] = value;
                return true;
            case Msr.Efer:
                return WriteEfer(value);
            case Msr.FsBase or Msr.GsBase or Msr.KernelGsBase or Msr.Lstar or Msr.Cstar or Msr.SysenterEsp or Msr.SysenterEip:
                if ((ulong)((long)(value << 16) >> 16) != value)
                {
                    return false;
                }

                if (index == Msr.FsBase) Seg[(int)SegReg.FS].Base = value;
                else if (index == Msr.GsBase) Seg[(int)SegReg.GS].Base = value;
                else Msrs[index] = value;
                return true;
            case Msr.TscAux when (value >> 32) != 0:
                return false;
            case Msr.Star or Msr.Fmask or Msr.SysenterCs or Msr.TscAux or Msr.Pat or Msr.MtrrDefType or Msr.SpecCtrl
                or Msr.BiosSignId or Msr.McgStatus:
                Msrs[index] = value;
                return true;
            case Msr.MiscEnable:
                Msrs[index] = value;
                return true;
            default:
                if (index is >= 0x200 and <= 0x20F or >= 0x250 and <= 0x26F)
                {
                    Msrs[index] = value;
                    return true;
                }

                return false;
        }
    }

    /// <summary>
    /// The architectural checks of a WRMSR to IA32_APIC_BASE (SDM 11.4.4): reserved bits 7:0 and 9,
    /// EXTD without x2APIC support, bits at or above MAXPHYADDR, and the illegal x2APIC
    /// transitions (EXTD=1 with EN=0; x2APIC → xAPIC without disabling first, SDM 11.12.5).
    /// On success updates <see cref="ApicBase"/> (which moves the APIC page and CPUID.1:EDX.APIC);
    /// the caller tells the local APIC. False means #GP(0).
    /// </summary>
    public bool TryWriteApicBase(ulong value)
    {
        var reserved = 0xFFUL | (1UL << 9) | ~Model.PhysicalAddressMask;
        if (!Model.X2Apic)
        {
            reserved |= MsrApicBase.X2Apic;
        }

        if ((value & reserved) != 0)
        {
            return false;
        }

        var en = (value & MsrApicBase.Enable) != 0;
        var extd = (value & MsrApicBase.X2Apic) != 0;
        var wasExtd = (ApicBase & MsrApicBase.X2Apic) != 0 && (ApicBase & MsrApicBase.Enable) != 0;
        if ((extd && !en) || (wasExtd && en && !extd))
        {
            return false;
        }

        ApicBase = (value & ~MsrApicBase.Bsp) | (ApicBase & MsrApicBase.Bsp);
        FlushTlb();
        return true;
    }

    /// <summary>EFER (SDM 2.2.1): SCE, LME, NXE writable; LMA read-only; LME may not change while paging is on.</summary>
    private bool WriteEfer(ulong value)
    {
        var writable = EferBits.SCE | EferBits.LME | (Model.Nx ? EferBits.NXE : 0);
        if ((value & ~(writable | EferBits.LMA)) != 0)
        {
            return false;
        }

        if (PagingEnabled && ((value ^ Efer) & EferBits.LME) != 0)
        {
            return false;
        }

        Efer = (Efer & EferBits.LMA) | (value & writable);
        FlushTlb();
        UpdateMode();
        return true;
    }
}
