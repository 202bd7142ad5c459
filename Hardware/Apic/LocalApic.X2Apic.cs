using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Apic;

/// <summary>
/// IA32_APIC_BASE and the x2APIC MSR interface (SDM 11.4.4, 11.12). TryRead/TryWrite return
/// false where the SDM raises #GP(0); the exit handler then injects #GP instead of retiring.
/// </summary>
public sealed partial class LocalApic
{
    private ulong _apicBase;

    /// <summary>IA32_APIC_BASE (MSR 0x1B).</summary>
    public ulong ApicBase => _apicBase;

    /// <summary>IA32_APIC_BASE.EN: the APIC is hardware-enabled (SDM 11.4.3).</summary>
    public bool HardwareEnabled => (_apicBase & ApicBits.BaseEnable) != 0;

    /// <summary>EN and EXTD: x2APIC mode (SDM 11.12.1).</summary>
    public bool X2ApicMode => (_apicBase & (ApicBits.BaseEnable | ApicBits.BaseExtd)) == (ApicBits.BaseEnable | ApicBits.BaseExtd);

    public bool IsBsp => (_apicBase & ApicBits.BaseBsp) != 0;

    /// <summary>Guest-physical base of the xAPIC page (IA32_APIC_BASE bits MAXPHYADDR-1:12).</summary>
    public ulong MmioBase => _apicBase & BaseAddressMask;

    private ulong BaseAddressMask => ((1UL << Config.PhysicalAddressBits) - 1) & ~0xFFFUL;

    /// <summary>
    /// True for the MSRs this model owns: IA32_APIC_BASE, TSC_DEADLINE, x2APIC 0x800-0x8FF.
    /// </summary>
    public static bool OwnsMsr(uint msr) => msr == Msr.ApicBase || msr == Msr.TscDeadline || Msr.IsX2Apic(msr);

    /// <summary>
    /// RDMSR of an APIC MSR; false means #GP(0): an x2APIC MSR outside x2APIC mode, a register that
    /// does not exist in x2APIC mode (APR, RRD, DFR, ICR2, reserved indices, CMCI without CMCI) or is
    /// write-only (EOI, SELF_IPI); TSC_DEADLINE without CPUID support.
    /// </summary>
    public bool TryReadMsr(uint msr, ulong now, out ulong value)
    {
        value = 0;
        if (msr == Msr.ApicBase)
        {
            value = _apicBase;
            return true;
        }

        if (msr == Msr.TscDeadline)
        {
            if (!Config.TscDeadline)
            {
                return false;
            }

            value = TscDeadlineMsr;
            return true;
        }

        if (!Msr.IsX2Apic(msr) || !X2ApicMode)
        {
            return false;
        }

        var offset = ApicReg.FromMsr(msr);
        if (offset == ApicReg.IcrLow)
        {
            value = ((ulong)_icrHigh << 32) | _icrLow;
            return true;
        }

        if (!TryReadRegister(offset, now, x2: true, out var v))
        {
            return false;
        }

        value = v;
        return true;
    }

    /// <summary>
    /// WRMSR of an APIC MSR; false means #GP(0). x2APIC rules (SDM 11.12.1.2-3, table 11-6):
    /// not in x2APIC mode; bits 63:32 set in anything but ICR; read-only (ID, LVR, PPR, LDR,
    /// ISR/TMR/IRR, TMCCT) or absent registers (APR, RRD, DFR, ICR2, reserved); ICR reserved
    /// bits 31:20, 17:16 and 13; SELF_IPI bits 31:8; a nonzero EOI or ESR write. Other reserved bits
    /// of a register are ignored as KVM does. IA32_APIC_BASE follows <see cref="TryWriteApicBase"/>.
    /// </summary>
    public bool TryWriteMsr(uint msr, ulong value, ulong now, out ApicWriteEffects effects)
    {
        effects = ApicWriteEffects.None;
        if (msr == Msr.ApicBase)
        {
            return TryWriteApicBase(value, now, out effects);
        }

        if (msr == Msr.TscDeadline)
        {
            if (!Config.TscDeadline)
            {
                return false;
            }

            effects = WriteTscDeadline(value, now);
            return true;
        }

        if (!Msr.IsX2Apic(msr) || !X2ApicMode)
        {
            return false;
        }

        var offset = ApicReg.FromMsr(msr);
        if (offset == ApicReg.IcrLow)
        {
            // Bits 31:20, 17:16 and 13 of the low half are reserved (SDM 11.12.9; KVM X2APIC_ICR_RESERVED_BITS).
            if ((value & 0xFFF3_2000UL) != 0)
            {
                return false;
            }

            effects = WriteIcr((uint)value, (uint)(value >> 32));
            return true;
        }

        if ((value >> 32) != 0)
        {
            return false;
        }

        var low = (uint)value;
        switch (offset)
        {
            case ApicReg.SelfIpi:
                if ((low & ~0xFFu) != 0)
                {
                    return false;
                }

                effects = SendSelfIpi((byte)low);
                return true;
            case ApicReg.Eoi or ApicReg.Esr when low != 0:
                return false;
            default:
                if (!TryWriteCommon(offset, low, now, out effects))
                {
                    return false; // read-only or absent in x2APIC mode
                }

                effects = Merge(effects, ErrorEffects());
                return true;
        }
    }

    /// <summary>
    /// WRMSR IA32_APIC_BASE (SDM 11.4.4, 11.12.5 figure 11-27). #GP (false) for reserved bits
    /// (7:0, 9, bits at or above MAXPHYADDR, EXTD without x2APIC support) and for the invalid
    /// transitions: EXTD without EN, x2APIC → xAPIC, disabled → x2APIC. Clearing EN resets the
    /// APIC's registers to their power-up values (SDM 11.4.3: state may be lost), keeping base and
    /// BSP; entering x2APIC mode switches the ID to the x2APIC ID (vcpuId) and derives LDR; leaving
    /// the disabled state for xAPIC restores the xAPIC ID to vcpuId.
    /// </summary>
    public bool TryWriteApicBase(ulong value, ulong now, out ApicWriteEffects effects)
    {
        effects = ApicWriteEffects.None;
        var reserved = ~(BaseAddressMask | ApicBits.BaseBsp | ApicBits.BaseEnable | (Config.X2Apic ? ApicBits.BaseExtd : 0));
        if ((value & reserved) != 0)
        {
            return false;
        }

        var oldMode = ModeOf(_apicBase);
        var newMode = ModeOf(value);
        if (newMode == BaseMode.Invalid
            || (oldMode == BaseMode.X2Apic && newMode == BaseMode.XApic)
            || (oldMode == BaseMode.Disabled && newMode == BaseMode.X2Apic))
        {
            return false;
        }

        var changed = value != _apicBase;
        _apicBase = value;
        var timer = false;
        if (newMode == BaseMode.Disabled && oldMode != BaseMode.Disabled)
        {
            timer = TimerDeadline != ulong.MaxValue;
            ResetRegisters();
            ClearPendingEvents(keepSipi: false);
        }
        else if (oldMode == BaseMode.Disabled && newMode == BaseMode.XApic)
        {
            _xapicId = (uint)VcpuId << 24;
        }

        effects = new ApicWriteEffects(EventNeeded: changed && newMode != BaseMode.Disabled, TimerChanged: timer, ApicBaseChanged: changed);
        return true;
    }

    private enum BaseMode
    {
        Disabled,
        XApic,
        X2Apic,
        Invalid,
    }

    private static BaseMode ModeOf(ulong b) => (b & ApicBits.BaseEnable, b & ApicBits.BaseExtd) switch
    {
        (0, 0) => BaseMode.Disabled,
        (0, _) => BaseMode.Invalid,
        (_, 0) => BaseMode.XApic,
        _ => BaseMode.X2Apic,
    };
}
