namespace ActorVm.Hardware.Apic;

/// <summary>
/// Interrupt acceptance (KVM __apic_accept_irq), the pending non-vectored events the run loop
/// takes (NMI, INIT, SIPI, SMI, ExtINT), local LVT delivery, ICR / SELF_IPI sending and the APIC
/// bus destination logic (SDM 11.6.2, 11.12.10).
/// </summary>
public sealed partial class LocalApic
{
    private int _nmiPending;
    private int _smiPending;
    private bool _initPending;
    private bool _sipiPending;
    private byte _sipiVector;
    private bool _extIntPending;

    /// <summary>NMIs accepted and not yet taken (KVM nmi_queued).</summary>
    public int PendingNmis => _nmiPending;

    /// <summary>SMIs accepted and not yet taken; SMM is not modelled, the owner only counts them.</summary>
    public int PendingSmis => _smiPending;

    public bool HasPendingInit => _initPending;

    public bool HasPendingSipi => _sipiPending;

    /// <summary>An ExtINT message arrived: the vector must come from the PIC (INTA to the 8259).</summary>
    public bool HasPendingExtInt => _extIntPending;

    /// <summary>INIT or SIPI is pending (KVM kvm_apic_has_pending_init_or_sipi).</summary>
    public bool HasPendingInitOrSipi => _initPending || _sipiPending;

    /// <summary>Any non-vectored event or a deliverable vector.</summary>
    public bool HasEvents => _nmiPending > 0 || _smiPending > 0 || _initPending || _sipiPending || _extIntPending || HighestPendingDeliverable() >= 0;

    /// <summary>Takes one pending NMI. NMIs are counted, not collapsed (KVM nmi_queued; the run loop limits to two).</summary>
    public bool TakeNmi()
    {
        if (_nmiPending == 0)
        {
            return false;
        }

        _nmiPending--;
        return true;
    }

    /// <summary>Takes all pending NMIs and returns how many there were.</summary>
    public int TakeAllNmis()
    {
        var n = _nmiPending;
        _nmiPending = 0;
        return n;
    }

    public bool TakeSmi()
    {
        if (_smiPending == 0)
        {
            return false;
        }

        _smiPending--;
        return true;
    }

    /// <summary>Takes a pending INIT. The owner resets the vCPU (BSP → runnable, AP → wait-for-SIPI) and calls <see cref="InitReset"/>.</summary>
    public bool TakePendingInit()
    {
        var init = _initPending;
        _initPending = false;
        return init;
    }

    /// <summary>
    /// Takes a pending SIPI vector. The owner honours it only in wait-for-SIPI (start at CS = vector &lt;&lt; 8,
    /// IP 0, i.e. vector × 0x1000) and drops it in any other state (KVM kvm_apic_accept_events).
    /// Take INIT first: INIT then SIPI in one batch is INIT, then start-up.
    /// </summary>
    public bool TryTakeSipi(out byte vector)
    {
        vector = _sipiVector;
        var sipi = _sipiPending;
        _sipiPending = false;
        return sipi;
    }

    public bool TakeExtInt()
    {
        var e = _extIntPending;
        _extIntPending = false;
        return e;
    }

    private void ClearPendingEvents(bool keepSipi)
    {
        _nmiPending = 0;
        _smiPending = 0;
        _initPending = false;
        _extIntPending = false;
        if (!keepSipi)
        {
            _sipiPending = false;
            _sipiVector = 0;
        }
    }

    /// <summary>Accepts a message from the APIC bus (<see cref="AcceptInterrupt(DeliveryMode, byte, bool, bool)"/>).</summary>
    public bool AcceptInterrupt(in InterruptMessage message) =>
        AcceptInterrupt(message.Mode, message.Vector, message.Assert, message.Level);

    /// <summary>
    /// KVM __apic_accept_irq. Returns true when the APIC's state changed so that the owner must
    /// make the request (EVENT, or NMI/SMI) and kick, in that order; false when the message is dropped.
    /// <list type="bullet">
    /// <item>A hardware-disabled APIC takes nothing from the bus (SDM 11.4.3).</item>
    /// <item>Fixed / lowest priority: dropped unless hardware- and software-enabled, and a level-triggered
    /// de-assert is dropped; vectors 0-15 log "receive illegal vector" in ESR (SDM 11.5.3) instead
    /// of setting IRR; otherwise IRR is set and TMR set (level) or cleared (edge).</item>
    /// <item>NMI: counted. SMI: counted. ExtINT: flagged for the PIC path. All accepted while software-disabled.</item>
    /// <item>INIT: pending, replacing a pending SIPI; a level-triggered de-assert (INIT level de-assert) is ignored.</item>
    /// <item>SIPI: the vector is stored and SIPI made pending (an earlier INIT stays pending).</item>
    /// <item>Delivery mode 3 (reserved) is dropped.</item>
    /// </list>
    /// </summary>
    public bool AcceptInterrupt(DeliveryMode mode, byte vector, bool assert, bool levelTriggered)
    {
        if (!HardwareEnabled)
        {
            return false;
        }

        switch (mode)
        {
            case DeliveryMode.Fixed or DeliveryMode.LowestPriority:
                if (!SoftwareEnabled || (levelTriggered && !assert))
                {
                    return false;
                }

                if (vector < 16)
                {
                    RecordError(ApicError.ReceiveIllegalVector);
                    return ErrorEffects().EventNeeded;
                }

                if (levelTriggered)
                {
                    Set(_tmr, vector);
                }
                else
                {
                    Clear(_tmr, vector);
                }

                Set(_irr, vector);
                return true;
            case DeliveryMode.Nmi:
                _nmiPending++;
                return true;
            case DeliveryMode.Smi:
                _smiPending++;
                return true;
            case DeliveryMode.Init:
                if (levelTriggered && !assert)
                {
                    return false;
                }

                _initPending = true;
                _sipiPending = false;
                return true;
            case DeliveryMode.StartUp:
                _sipiVector = vector;
                _sipiPending = true;
                return true;
            case DeliveryMode.ExtInt:
                _extIntPending = true;
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Raise a local interrupt through an LVT entry (KVM kvm_apic_local_deliver): nothing when the
    /// APIC is hardware-disabled or the entry is masked; otherwise the entry's delivery mode, vector
    /// and trigger (level only for LINT0/1) are accepted. Returns whether the state changed.
    /// </summary>
    public bool RaiseLocalInterrupt(LvtIndex index)
    {
        var lvt = _lvt[(int)index];
        if (!HardwareEnabled || (lvt & ApicBits.Masked) != 0)
        {
            return false;
        }

        var mode = index == LvtIndex.Timer || index == LvtIndex.Error ? DeliveryMode.Fixed : (DeliveryMode)((lvt >> 8) & 7);
        var level = (index == LvtIndex.Lint0 || index == LvtIndex.Lint1) && (lvt & ApicBits.TriggerLevel) != 0;
        var accepted = AcceptInterrupt(mode, (byte)lvt, assert: true, levelTriggered: level);
        if (accepted && level && mode == DeliveryMode.Fixed && (lvt & ApicBits.VectorMask) >= 16)
        {
            // SDM 11.5.1: remote IRR is set when a fixed level-triggered LINT interrupt is accepted, cleared by its EOI.
            _lvt[(int)index] |= ApicBits.RemoteIrr;
        }

        return accepted;
    }

    /// <summary>
    /// The PIC's INTR reaches this CPU (KVM kvm_apic_accept_pic_intr): the APIC is hardware-disabled
    /// (INTR straight to the core) or LINT0 is unmasked in ExtINT mode (virtual-wire mode).
    /// </summary>
    public bool AcceptsPicInterrupts
    {
        get
        {
            var lint0 = _lvt[(int)LvtIndex.Lint0];
            return !HardwareEnabled || ((lint0 & ApicBits.Masked) == 0 && ((lint0 >> 8) & 7) == (uint)DeliveryMode.ExtInt);
        }
    }

    // ---- sending ---------------------------------------------------------------------------

    /// <summary>
    /// ICR write (SDM 11.6.1): stores ICR (BUSY always reads 0: delivery is immediate) and returns
    /// the message to send. Fixed / lowest priority with vector 0-15 logs "send illegal vector" in
    /// ESR and sends nothing.
    /// </summary>
    private ApicWriteEffects WriteIcr(uint low, uint high)
    {
        StoreIcr(low, high);
        var mode = (DeliveryMode)((low >> 8) & 7);
        var vector = (byte)low;
        if ((mode is DeliveryMode.Fixed or DeliveryMode.LowestPriority) && vector < 16)
        {
            RecordError(ApicError.SendIllegalVector);
            return ErrorEffects();
        }

        return new ApicWriteEffects(Ipi: DecodeIcr(low, high, X2ApicMode, VcpuId));
    }

    /// <summary>
    /// The register half of an ICR write, without sending: what kvm_x2apic_icr_write leaves in
    /// the APIC page when the sender's vCPU delivered the IPI itself (the x2APIC ICR fastpath).
    /// </summary>
    public void StoreIcr(uint low, uint high)
    {
        _icrLow = low & 0x000C_CFFF;
        _icrHigh = high;
    }

    /// <summary>
    /// ICR → bus message (SDM 11.6.1 figure 11-12, 11.12.9): vector 7:0, delivery mode 10:8,
    /// logical 11, assert 14, level-triggered 15, shorthand 19:18; the destination is
    /// <paramref name="high"/>[31:24] in xAPIC format or all of it in x2APIC format.
    /// </summary>
    public static InterruptMessage DecodeIcr(uint low, uint high, bool x2ApicFormat, int sourceVcpu) => new(
        (byte)low,
        (DeliveryMode)((low >> 8) & 7),
        Logical: (low & ApicBits.DestLogical) != 0,
        Level: (low & ApicBits.TriggerLevel) != 0,
        Assert: (low & ApicBits.LevelAssert) != 0,
        Shorthand: (Shorthand)((low >> 18) & 3),
        Destination: x2ApicFormat ? high : high >> 24,
        SourceVcpu: sourceVcpu,
        X2ApicFormat: x2ApicFormat);

    /// <summary>x2APIC SELF_IPI (SDM 11.12.11): a fixed, edge, self-shorthand IPI; ICR is not changed.</summary>
    private ApicWriteEffects SendSelfIpi(byte vector)
    {
        if (vector < 16)
        {
            RecordError(ApicError.SendIllegalVector);
            return ErrorEffects();
        }

        return new ApicWriteEffects(Ipi: new InterruptMessage(vector, DeliveryMode.Fixed, false, false, true, Shorthand.Self, (uint)VcpuId, VcpuId, true));
    }

    // ---- destination matching (SDM 11.6.2) ---------------------------------------------------

    /// <summary>
    /// Physical destination in this APIC's current format: xAPIC compares the 8-bit ID (0xFF is
    /// broadcast), x2APIC the 32-bit x2APIC ID (0xFFFFFFFF is broadcast).
    /// </summary>
    public bool MatchesPhysical(uint dest) => X2ApicMode
        ? dest == ApicBits.X2ApicBroadcast || dest == (uint)VcpuId
        : dest == ApicBits.XApicBroadcast || dest == _xapicId >> 24;

    /// <summary>
    /// Logical destination in this APIC's current format (KVM kvm_apic_match_logical_addr):
    /// x2APIC: broadcast, or same cluster (31:16) and a common bit in 15:0 of the derived LDR;
    /// xAPIC: broadcast 0xFF, flat model (DFR 31:28 = 0xF) any common bit of LDR[31:24], cluster
    /// model (0x0) same cluster [7:4] and a common bit in [3:0].
    /// </summary>
    public bool MatchesLogical(uint dest)
    {
        if (X2ApicMode)
        {
            if (dest == ApicBits.X2ApicBroadcast)
            {
                return true;
            }

            var ldr = X2ApicLdr;
            return (ldr >> 16) == (dest >> 16) && (ldr & dest & 0xFFFF) != 0;
        }

        if (dest == ApicBits.XApicBroadcast)
        {
            return true;
        }

        var logicalId = _ldr >> 24;
        return (_dfr >> 28) switch
        {
            0xF => (logicalId & dest) != 0,
            0x0 => (logicalId >> 4) == ((dest >> 4) & 0xF) && (logicalId & dest & 0xF) != 0,
            _ => false,
        };
    }

    /// <summary>
    /// Whether a message without shorthand addresses this APIC. An 8-bit broadcast from an xAPIC
    /// source (or the IOAPIC) reaches x2APIC targets as the x2APIC broadcast, and vice versa.
    /// </summary>
    public bool MatchesDestination(in InterruptMessage message)
    {
        var dest = message.Destination;
        if (message.X2ApicFormat != X2ApicMode)
        {
            if (!message.X2ApicFormat && dest == ApicBits.XApicBroadcast)
            {
                dest = ApicBits.X2ApicBroadcast;
            }
            else if (message.X2ApicFormat && dest == ApicBits.X2ApicBroadcast)
            {
                dest = ApicBits.XApicBroadcast;
            }
        }

        return message.Logical ? MatchesLogical(dest) : MatchesPhysical(dest);
    }

    /// <summary>
    /// The APIC bus: the APICs a message reaches (KVM kvm_irq_delivery_to_apic). Shorthands: self →
    /// the source only; all-including-self; all-excluding-self (the source is
    /// <see cref="InterruptMessage.SourceVcpu"/>, -1 for the IOAPIC/MSI). Without shorthand the
    /// physical/logical destination selects; hardware-disabled APICs never match. Lowest priority
    /// picks one target among the matching enabled APICs: lowest APR, ties to the lowest APIC ID
    /// (then lowest vcpu id) — deterministic, unlike KVM's vector hashing.
    /// </summary>
    public static List<LocalApic> Route(IReadOnlyList<LocalApic> apics, in InterruptMessage message)
    {
        var targets = new List<LocalApic>();
        foreach (var apic in apics)
        {
            if (!apic.HardwareEnabled)
            {
                continue;
            }

            var isSource = apic.VcpuId == message.SourceVcpu;
            var hit = message.Shorthand switch
            {
                Shorthand.Self => isSource,
                Shorthand.AllIncludingSelf => true,
                Shorthand.AllExcludingSelf => !isSource,
                _ => apic.MatchesDestination(message),
            };
            if (hit)
            {
                targets.Add(apic);
            }
        }

        if (message.Mode == DeliveryMode.LowestPriority && targets.Count > 1)
        {
            LocalApic? best = null;
            foreach (var apic in targets)
            {
                if (!apic.Enabled)
                {
                    continue;
                }

                if (best is null || Compare(apic, best) < 0)
                {
                    best = apic;
                }
            }

            targets.Clear();
            if (best is not null)
            {
                targets.Add(best);
            }
        }

        return targets;

        static int Compare(LocalApic a, LocalApic b)
        {
            var c = a.Apr.CompareTo(b.Apr);
            if (c == 0)
            {
                c = a.ApicId.CompareTo(b.ApicId);
            }

            return c != 0 ? c : a.VcpuId.CompareTo(b.VcpuId);
        }
    }
}
