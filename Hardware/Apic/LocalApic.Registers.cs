namespace ActorVm.Hardware.Apic;

/// <summary>
/// Register access: one read switch and one write switch shared by both modes (KVM
/// kvm_lapic_reg_read / kvm_lapic_reg_write); the xAPIC MMIO entry points are here, the x2APIC
/// MSR checks in <c>LocalApic.X2Apic.cs</c>.
/// </summary>
public sealed partial class LocalApic
{
    /// <summary>The xAPIC page answers MMIO: hardware-enabled and not in x2APIC mode (SDM 11.12.1.2).</summary>
    public bool XApicMmioActive => HardwareEnabled && !X2ApicMode;

    /// <summary>
    /// xAPIC MMIO read of the dword at <paramref name="offset"/> within the APIC page (SDM 11.4.1:
    /// registers are 32 bits on 16-byte boundaries). Offsets 4..15 within a register and
    /// registers absent in xAPIC mode read 0; a reserved register also latches ESR bit 7. Reads
    /// are 0 when the page is not active (<see cref="XApicMmioActive"/>).
    /// </summary>
    public uint ReadMmio(uint offset, ulong now)
    {
        offset &= 0xFFC;
        if (!XApicMmioActive || (offset & 0xF) != 0)
        {
            return 0;
        }

        if (!TryReadRegister(offset, now, x2: false, out var value))
        {
            // The LVT error interrupt this may raise is reported by the overload with eventNeeded,
            // else by the next write's effects.
            RecordError(ApicError.IllegalRegisterAddress);
            return 0;
        }

        return value;
    }

    /// <summary>
    /// <see cref="ReadMmio(uint, ulong)"/> that also reports whether the read raised the LVT error
    /// interrupt (a reserved register, SDM 11.5.3): the owner then makes EVENT and kicks.
    /// </summary>
    public uint ReadMmio(uint offset, ulong now, out bool eventNeeded)
    {
        var value = ReadMmio(offset, now);
        eventNeeded = ErrorEffects().EventNeeded;
        return value;
    }

    /// <summary>
    /// xAPIC MMIO write of a dword. Read-only registers ignore writes; a reserved register latches
    /// ESR bit 7. The returned effects say what the owner must do (IPI, IOAPIC EOI, request, timer).
    /// </summary>
    public ApicWriteEffects WriteMmio(uint offset, uint value, ulong now)
    {
        offset &= 0xFFC;
        if (!XApicMmioActive || (offset & 0xF) != 0)
        {
            return ApicWriteEffects.None;
        }

        switch (offset)
        {
            case ApicReg.Id:
                // xAPIC ID is writable (8 bits, SDM 11.4.6); KVM kvm_apic_set_xapic_id.
                _xapicId = value & 0xFF000000;
                return ApicWriteEffects.None;
            case ApicReg.Ldr:
                _ldr = value & 0xFF000000;
                return ApicWriteEffects.None;
            case ApicReg.Dfr:
                _dfr = value | 0x0FFFFFFF;
                return ApicWriteEffects.None;
            case ApicReg.IcrLow:
                return WriteIcr(value, _icrHigh);
            case ApicReg.IcrHigh:
                _icrHigh = value & 0xFF000000;
                return ApicWriteEffects.None;
            case ApicReg.Version or ApicReg.Apr or ApicReg.Ppr or ApicReg.Rrd or ApicReg.Tmcct:
            case >= ApicReg.Isr and < ApicReg.Esr:
                return ApicWriteEffects.None; // read-only: writes are ignored
            default:
                if (TryWriteCommon(offset, value, now, out var fx))
                {
                    return fx;
                }

                RecordError(ApicError.IllegalRegisterAddress);
                return Merge(fx, ErrorEffects());
        }
    }

    /// <summary>
    /// The read switch. False for a register that does not exist in the mode (xAPIC: illegal
    /// register address; x2APIC: #GP); write-only registers read 0 in xAPIC mode.
    /// </summary>
    private bool TryReadRegister(uint offset, ulong now, bool x2, out uint value)
    {
        value = 0;
        switch (offset)
        {
            case ApicReg.Id: value = x2 ? (uint)VcpuId : _xapicId; return true;
            case ApicReg.Version: value = Version; return true;
            case ApicReg.Tpr: value = _tpr; return true;
            case ApicReg.Apr: value = Apr; return !x2;
            case ApicReg.Ppr: value = Ppr; return true;
            case ApicReg.Eoi: return !x2; // write-only
            case ApicReg.Rrd: return !x2; // remote read unsupported: reads 0 (SDM 11.6: not on xAPIC)
            case ApicReg.Ldr: value = Ldr; return true;
            case ApicReg.Dfr: value = _dfr; return !x2;
            case ApicReg.Svr: value = _svr; return true;
            case >= ApicReg.Isr and < ApicReg.Tmr: value = _isr[(offset - ApicReg.Isr) >> 4]; return true;
            case >= ApicReg.Tmr and < ApicReg.Irr: value = _tmr[(offset - ApicReg.Tmr) >> 4]; return true;
            case >= ApicReg.Irr and < ApicReg.Esr: value = _irr[(offset - ApicReg.Irr) >> 4]; return true;
            case ApicReg.Esr: value = _esr; return true;
            case ApicReg.LvtCmci:
                if (!Config.Cmci)
                {
                    return false;
                }

                value = _lvt[(int)LvtIndex.Cmci];
                return true;
            case ApicReg.IcrLow: value = _icrLow; return true;
            case ApicReg.IcrHigh: value = _icrHigh; return !x2;
            case >= ApicReg.LvtTimer and <= ApicReg.LvtError: value = _lvt[LvtOf(offset)]; return true;
            case ApicReg.Tmict: value = _tmict; return true;
            case ApicReg.Tmcct: value = CurrentCount(now); return true;
            case ApicReg.Tdcr: value = _tdcr; return true;
            case ApicReg.SelfIpi: return false; // x2APIC: write-only (#GP); xAPIC: absent
            default: return false;
        }
    }

    /// <summary>
    /// The write switch for registers with the same semantics in both modes. False for an offset
    /// it does not own (the caller decides between ignore, ESR and #GP).
    /// </summary>
    private bool TryWriteCommon(uint offset, uint value, ulong now, out ApicWriteEffects fx)
    {
        fx = ApicWriteEffects.None;
        switch (offset)
        {
            case ApicReg.Tpr:
                fx = new ApicWriteEffects(EventNeeded: SetTpr((byte)value));
                return true;
            case ApicReg.Eoi:
                fx = Eoi();
                return true;
            case ApicReg.Svr:
                fx = WriteSvr(value);
                return true;
            case ApicReg.Esr:
                // Write-before-read (SDM 11.5.3): the write latches the errors seen since the previous write.
                _esr = _esrPending;
                _esrPending = 0;
                return true;
            case ApicReg.LvtCmci:
                if (!Config.Cmci)
                {
                    return false;
                }

                fx = WriteLvt(LvtIndex.Cmci, value, now);
                return true;
            case >= ApicReg.LvtTimer and <= ApicReg.LvtError when (offset & 0xF) == 0:
                fx = WriteLvt((LvtIndex)LvtOf(offset), value, now);
                return true;
            case ApicReg.Tmict:
                fx = WriteTmict(value, now);
                return true;
            case ApicReg.Tdcr:
                fx = WriteTdcr(value, now);
                return true;
            default:
                return false;
        }
    }

    private static int LvtOf(uint offset) => offset switch
    {
        ApicReg.LvtTimer => (int)LvtIndex.Timer,
        ApicReg.LvtThermal => (int)LvtIndex.Thermal,
        ApicReg.LvtPmc => (int)LvtIndex.Pmc,
        ApicReg.LvtLint0 => (int)LvtIndex.Lint0,
        ApicReg.LvtLint1 => (int)LvtIndex.Lint1,
        ApicReg.LvtError => (int)LvtIndex.Error,
        _ => (int)LvtIndex.Cmci,
    };

    /// <summary>Writable bits of each LVT entry (SDM figure 11-8; delivery status and remote IRR are read-only).</summary>
    public uint LvtWritableMask(LvtIndex index) => index switch
    {
        LvtIndex.Timer => ApicBits.VectorMask | ApicBits.Masked | (Config.TscDeadline ? 3u << 17 : 1u << 17),
        LvtIndex.Thermal or LvtIndex.Pmc or LvtIndex.Cmci => ApicBits.VectorMask | ApicBits.DeliveryModeMask | ApicBits.Masked,
        LvtIndex.Lint0 or LvtIndex.Lint1 => ApicBits.VectorMask | ApicBits.DeliveryModeMask | ApicBits.Polarity | ApicBits.TriggerLevel | ApicBits.Masked,
        LvtIndex.Error => ApicBits.VectorMask | ApicBits.Masked,
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    private ApicWriteEffects WriteLvt(LvtIndex index, uint value, ulong now)
    {
        value &= LvtWritableMask(index);
        if (!SoftwareEnabled)
        {
            // SDM 11.4.7.2: while software-disabled the mask bits cannot be cleared.
            value |= ApicBits.Masked;
        }

        if (index == LvtIndex.Timer)
        {
            return WriteLvtTimer(value);
        }

        _lvt[(int)index] = value | (_lvt[(int)index] & ApicBits.RemoteIrr);
        return ApicWriteEffects.None;
    }

    private ApicWriteEffects WriteSvr(uint value)
    {
        var wasEnabled = SoftwareEnabled;
        _svr = value & 0x3FF; // vector, APIC enable, focus-processor check (no EOI-broadcast suppression)
        if (!SoftwareEnabled)
        {
            // SDM 11.4.7.2 / KVM apic_set_spiv: software disable masks every LVT entry.
            for (var i = 0; i < _lvt.Length; i++)
            {
                _lvt[i] |= ApicBits.Masked;
            }
        }

        return new ApicWriteEffects(EventNeeded: wasEnabled != SoftwareEnabled);
    }

    /// <summary>
    /// Latch an error for the next ESR write and signal it through LVT error (SDM 11.5.3): every
    /// detected error raises the LVT error interrupt (it coalesces in IRR like any fixed vector).
    /// </summary>
    private void RecordError(ApicError error)
    {
        _esrPending |= (uint)error;

        // An illegal vector in LVT error itself would only log another receive error: not raised.
        if ((_lvt[(int)LvtIndex.Error] & ApicBits.VectorMask) >= 16)
        {
            _errorRaised |= RaiseLocalInterrupt(LvtIndex.Error);
        }
    }

    private bool _errorRaised;

    /// <summary>EventNeeded if an error interrupt was raised since the last call.</summary>
    private ApicWriteEffects ErrorEffects()
    {
        var raised = _errorRaised;
        _errorRaised = false;
        return new ApicWriteEffects(EventNeeded: raised);
    }

    private static ApicWriteEffects Merge(ApicWriteEffects a, ApicWriteEffects b) => new(
        a.Ipi ?? b.Ipi,
        a.LevelEoiVector ?? b.LevelEoiVector,
        a.EventNeeded || b.EventNeeded,
        a.TimerChanged || b.TimerChanged,
        a.ApicBaseChanged || b.ApicBaseChanged);
}
