using System.Numerics;

namespace ActorVm.Hardware.Apic;

/// <summary>
/// One local APIC (SDM vol. 3 chapter 11; behaviour after KVM lapic.c): a pure register and
/// state model, single-threaded, with time passed in as guest TSC <c>now</c>. The LapicActor owns
/// an instance and carries out the <see cref="ApicWriteEffects"/> of each write in KVM's order:
/// state (done here), then request, then kick.
/// <para>Split by concern like lapic.c: this file holds the state, reset and the priority logic
/// (TPR/PPR/APR, acknowledge, EOI); <c>.Registers</c> the xAPIC read/write switches; <c>.X2Apic</c>
/// the MSR interface and IA32_APIC_BASE; <c>.Delivery</c> acceptance, pending events and the
/// APIC-bus destination logic; <c>.Timer</c> the LVT timer.</para>
/// </summary>
public sealed partial class LocalApic
{
    /// <summary>
    /// KVM exposes 6 LVT entries, 7 when the vCPU has MCG_CMCI_P (KVM_APIC_MAX_NR_LVT_ENTRIES).
    /// ActorVm follows KVM with <see cref="ApicConfig.Cmci"/> choosing the count: version
    /// 0x00060014 with CMCI (the default), 0x00050014 without.
    /// </summary>
    public int LvtCount => Config.Cmci ? 7 : 6;

    private readonly uint[] _irr = new uint[8];
    private readonly uint[] _isr = new uint[8];
    private readonly uint[] _tmr = new uint[8];
    private readonly uint[] _lvt = new uint[7];

    private uint _xapicId;   // xAPIC ID register as read (ID in bits 31:24)
    private uint _tpr;
    private uint _ldr;       // xAPIC LDR (bits 31:24); x2APIC derives it
    private uint _dfr;
    private uint _svr;
    private uint _esr;        // the readable ESR (latched by the last ESR write)
    private uint _esrPending; // errors detected since the last ESR write
    private uint _icrLow;
    private uint _icrHigh;    // xAPIC ICR2, or the x2APIC destination (ICR 63:32)

    public LocalApic(int vcpuId, ApicConfig config)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(vcpuId);
        VcpuId = vcpuId;
        Config = config;
        Reset(isBsp: vcpuId == 0);
    }

    public int VcpuId { get; }

    public ApicConfig Config { get; }

    /// <summary>LVR: version 0x14 (integrated xAPIC), max LVT entry in bits 23:16; no EOI-broadcast suppression.</summary>
    public uint Version => 0x14u | ((uint)(LvtCount - 1) << 16);

    /// <summary>The APIC ID in the current mode: the x2APIC ID (= vcpuId) in x2APIC mode, else xAPIC ID[31:24].</summary>
    public uint ApicId => X2ApicMode ? (uint)VcpuId : _xapicId >> 24;

    /// <summary>x2APIC LDR, derived from the x2APIC ID (SDM 11.12.10.2): cluster in 31:16, one bit in 15:0.</summary>
    public uint X2ApicLdr => X2ApicLdrOf(VcpuId);

    /// <summary>The x2APIC LDR of the APIC with x2APIC ID <paramref name="x2ApicId"/> (SDM 11.12.10.2): it cannot be changed, so senders may compute it.</summary>
    public static uint X2ApicLdrOf(int x2ApicId) => (((uint)x2ApicId >> 4) << 16) | (1u << (x2ApicId & 0xF));

    /// <summary>LDR as read in the current mode.</summary>
    public uint Ldr => X2ApicMode ? X2ApicLdr : _ldr;

    public uint Dfr => _dfr;

    public uint Svr => _svr;

    public byte Tpr => (byte)_tpr;

    /// <summary>CR8 mirrors TPR[7:4] (SDM 10.8.6.1 / 11.8.6).</summary>
    public ulong Cr8 => _tpr >> 4;

    /// <summary>SVR bit 8: software enabled (SDM 11.4.7.2). Reset leaves the APIC software-disabled.</summary>
    public bool SoftwareEnabled => (_svr & ApicBits.SvrEnable) != 0;

    /// <summary>Hardware- and software-enabled: fixed interrupts are accepted (KVM kvm_apic_enabled).</summary>
    public bool Enabled => HardwareEnabled && SoftwareEnabled;

    public uint GetLvt(LvtIndex index) => _lvt[(int)index];

    public bool IsLvtMasked(LvtIndex index) => (_lvt[(int)index] & ApicBits.Masked) != 0;

    public bool IsIrrSet(int vector) => Test(_irr, vector);

    public bool IsIsrSet(int vector) => Test(_isr, vector);

    public bool IsTmrSet(int vector) => Test(_tmr, vector);

    /// <summary>
    /// Power-up / RESET state (SDM 11.4.7.1): IA32_APIC_BASE = 0xFEE00000 | EN (| BSP), xAPIC
    /// mode, ID = vcpuId, every register at its reset value, all LVTs masked, SVR = 0xFF
    /// (software-disabled), nothing pending, timer stopped.
    /// </summary>
    public void Reset(bool isBsp)
    {
        _apicBase = ApicBits.DefaultBase | ApicBits.BaseEnable | (isBsp ? ApicBits.BaseBsp : 0);
        _xapicId = (uint)VcpuId << 24;
        ResetRegisters();
        ClearPendingEvents(keepSipi: false);
    }

    /// <summary>
    /// INIT reset (SDM 11.4.7.3, wait-for-SIPI): like power-up except that the APIC ID, IA32_APIC_BASE
    /// (base, BSP and x2APIC mode, SDM 11.12.5.1) are kept. A SIPI that is already pending survives,
    /// so the owner may take INIT, call this, then take the SIPI (KVM kvm_apic_accept_events order).
    /// </summary>
    public void InitReset()
    {
        ResetRegisters();
        ClearPendingEvents(keepSipi: true);
    }

    private void ResetRegisters()
    {
        Array.Clear(_irr);
        Array.Clear(_isr);
        Array.Clear(_tmr);
        for (var i = 0; i < _lvt.Length; i++)
        {
            _lvt[i] = ApicBits.Masked;
        }

        // The SDM resets every LVT entry masked (11.4.7.1), but KVM (kvm_lapic_reset with
        // KVM_X86_QUIRK_LINT0_REENABLED, on by default) and QEMU (apic_reset_common) set the BSP's
        // LINT0 to ExtINT, unmasked, as a BIOS would: PIC interrupts reach the BSP once its APIC is
        // software-enabled. Like KVM, also at an INIT of the BSP.
        if (IsBsp)
        {
            _lvt[(int)LvtIndex.Lint0] = (uint)DeliveryMode.ExtInt << 8; // 0x700
        }

        _tpr = 0;
        _ldr = 0;
        _dfr = 0xFFFFFFFF;
        _svr = 0xFF;
        _esr = 0;
        _esrPending = 0;
        _icrLow = 0;
        _icrHigh = 0;
        ResetTimer();
    }

    // ---- priorities (SDM 11.8.3.1) ---------------------------------------------------------

    /// <summary>Highest vector set in IRR, or -1.</summary>
    public int HighestIrr() => Highest(_irr);

    /// <summary>Highest vector set in ISR (ISRV), or -1.</summary>
    public int HighestIsr() => Highest(_isr);

    /// <summary>PPR = TPR if TPR[7:4] ≥ ISRV[7:4], else ISRV[7:4]:0 (SDM 11.8.3.1).</summary>
    public byte Ppr
    {
        get
        {
            var isrv = (uint)Math.Max(HighestIsr(), 0);
            return (byte)((_tpr & 0xF0) >= (isrv & 0xF0) ? _tpr : isrv & 0xF0);
        }
    }

    /// <summary>
    /// APR (SDM 11.6.2.4, figure 11-15): TPR if TPR[7:4] ≥ IRRV[7:4] and TPR[7:4] &gt; ISRV[7:4],
    /// else the highest of TPR, ISRV and IRRV classes with bits 3:0 clear. Used for lowest-priority
    /// arbitration; the register exists only in xAPIC mode.
    /// </summary>
    public byte Apr
    {
        get
        {
            var isrv = (uint)Math.Max(HighestIsr(), 0);
            var irrv = (uint)Math.Max(HighestIrr(), 0);
            if ((_tpr >> 4) >= (irrv >> 4) && (_tpr >> 4) > (isrv >> 4))
            {
                return (byte)_tpr;
            }

            return (byte)Math.Max(_tpr & 0xF0, Math.Max(isrv & 0xF0, irrv & 0xF0));
        }
    }

    /// <summary>
    /// The highest IRR vector whose priority class beats PPR (KVM apic_has_interrupt_for_ppr),
    /// or -1. Nothing is deliverable while the APIC is hardware-disabled; a software-disabled APIC
    /// still delivers what is already in IRR (SDM 11.4.7.2).
    /// </summary>
    public int HighestPendingDeliverable()
    {
        if (!HardwareEnabled)
        {
            return -1;
        }

        var v = HighestIrr();
        return v >= 0 && (v & 0xF0) > (Ppr & 0xF0) ? v : -1;
    }

    /// <summary>
    /// INTA: moves the highest deliverable vector from IRR to ISR (PPR follows) and returns it
    /// (KVM kvm_get_apic_interrupt). False when nothing is deliverable.
    /// </summary>
    public bool TryAcknowledge(out byte vector)
    {
        var v = HighestPendingDeliverable();
        if (v < 0)
        {
            vector = 0;
            return false;
        }

        Clear(_irr, v);
        Set(_isr, v);
        vector = (byte)v;
        return true;
    }

    /// <summary>
    /// kvm_apic_ack_interrupt: moves <paramref name="vector"/> from IRR to ISR (PPR follows) for a
    /// caller that chose it itself; no priority check (<see cref="TryAcknowledge"/> chooses the
    /// highest deliverable vector). False, and nothing changes, if the vector is not in IRR.
    /// </summary>
    public bool AcknowledgeVector(byte vector)
    {
        if (!Test(_irr, vector))
        {
            return false;
        }

        Clear(_irr, vector);
        Set(_isr, vector);
        return true;
    }

    /// <summary><see cref="TryAcknowledge"/> for callers that checked <see cref="HighestPendingDeliverable"/>; throws if nothing is deliverable.</summary>
    public byte Acknowledge() =>
        TryAcknowledge(out var v) ? v : throw new InvalidOperationException("no deliverable interrupt to acknowledge");

    /// <summary>
    /// EOI (SDM 11.8.5; KVM apic_set_eoi): clears the highest ISR bit; nothing if ISR is empty.
    /// A level-triggered vector (TMR set) is returned for the IOAPIC's EOI; EventNeeded is always
    /// set because a lower pending vector may now beat PPR.
    /// </summary>
    public ApicWriteEffects Eoi()
    {
        var v = HighestIsr();
        if (v < 0)
        {
            return ApicWriteEffects.None;
        }

        Clear(_isr, v);
        if (Test(_tmr, v))
        {
            foreach (var lint in (ReadOnlySpan<int>)[(int)LvtIndex.Lint0, (int)LvtIndex.Lint1])
            {
                if ((_lvt[lint] & ApicBits.VectorMask) == (uint)v)
                {
                    _lvt[lint] &= ~ApicBits.RemoteIrr;
                }
            }
        }

        return new ApicWriteEffects(LevelEoiVector: Test(_tmr, v) ? (byte)v : null, EventNeeded: true);
    }

    /// <summary>TPR write (bits 7:0; KVM apic_set_tpr). True when PPR dropped and something became deliverable.</summary>
    public bool SetTpr(byte tpr)
    {
        var before = HighestPendingDeliverable();
        _tpr = tpr;
        var after = HighestPendingDeliverable();
        return after >= 0 && after != before;
    }

    /// <summary>MOV to CR8: TPR[7:4] = CR8[3:0], TPR[3:0] = 0 (SDM 10.8.6.1).</summary>
    public bool SetCr8(ulong cr8) => SetTpr((byte)((cr8 & 0xF) << 4));

    // ---- 256-bit register helpers -----------------------------------------------------------

    private static bool Test(uint[] reg, int v) => (reg[v >> 5] & (1u << (v & 31))) != 0;

    private static void Set(uint[] reg, int v) => reg[v >> 5] |= 1u << (v & 31);

    private static void Clear(uint[] reg, int v) => reg[v >> 5] &= ~(1u << (v & 31));

    private static int Highest(uint[] reg)
    {
        for (var i = 7; i >= 0; i--)
        {
            if (reg[i] != 0)
            {
                return (i << 5) + 31 - BitOperations.LeadingZeroCount(reg[i]);
            }
        }

        return -1;
    }
}

/// <summary>Per-VM APIC configuration.</summary>
/// <param name="TscHz">Guest TSC frequency; the APIC bus clock is 1 GHz (KVM's APIC_BUS_CYCLE_NS = 1) expressed in TSC ticks.</param>
/// <param name="TscDeadline">CPUID.1:ECX[24]: LVTT may select TSC-deadline mode and MSR 0x6E0 exists.</param>
/// <param name="X2Apic">CPUID.1:ECX[21]: IA32_APIC_BASE.EXTD may be set.</param>
/// <param name="PhysicalAddressBits">MAXPHYADDR: IA32_APIC_BASE bits above it #GP.</param>
/// <param name="Cmci">The LVT CMCI entry exists (KVM: MCG_CMCI_P): 7 LVT entries instead of 6.</param>
public sealed record ApicConfig(ulong TscHz, bool TscDeadline = true, bool X2Apic = true, int PhysicalAddressBits = 40, bool Cmci = true)
{
    /// <summary>KVM's min_timer_period_us default: a periodic timer never fires more often.</summary>
    public static readonly TimeSpan MinPeriodicPeriod = TimeSpan.FromMicroseconds(200);
}
