namespace ActorVm.Hardware.Apic;

/// <summary>
/// xAPIC MMIO register offsets (SDM vol. 3 table 11-1). The x2APIC MSR of a register is
/// <c>0x800 + (offset &gt;&gt; 4)</c> (SDM table 11-6).
/// </summary>
public static class ApicReg
{
    public const uint Id = 0x20, Version = 0x30, Tpr = 0x80, Apr = 0x90, Ppr = 0xA0, Eoi = 0xB0, Rrd = 0xC0;
    public const uint Ldr = 0xD0, Dfr = 0xE0, Svr = 0xF0, Isr = 0x100, Tmr = 0x180, Irr = 0x200, Esr = 0x280;
    public const uint LvtCmci = 0x2F0, IcrLow = 0x300, IcrHigh = 0x310, LvtTimer = 0x320, LvtThermal = 0x330;
    public const uint LvtPmc = 0x340, LvtLint0 = 0x350, LvtLint1 = 0x360, LvtError = 0x370;
    public const uint Tmict = 0x380, Tmcct = 0x390, Tdcr = 0x3E0, SelfIpi = 0x3F0;

    /// <summary>x2APIC MSR index of an xAPIC offset.</summary>
    public static uint ToMsr(uint offset) => 0x800 + (offset >> 4);

    /// <summary>xAPIC offset of an x2APIC MSR index.</summary>
    public static uint FromMsr(uint msr) => (msr - 0x800) << 4;

    /// <summary>Register name for the kvm_apic tracepoint (<c>apic_%s %s = 0x%llx</c>), KVM's apic_reg names.</summary>
    public static string Name(uint offset) => (offset & 0xFF0) switch
    {
        Id => "id",
        Version => "lvr",
        Tpr => "tpr",
        Apr => "arb_pri",
        Ppr => "proc_pri",
        Eoi => "eoi",
        Rrd => "rrr",
        Ldr => "ldr",
        Dfr => "dfr",
        Svr => "spiv",
        >= Isr and < Tmr => "isr",
        >= Tmr and < Irr => "tmr",
        >= Irr and < Esr => "irr",
        Esr => "esr",
        LvtCmci => "lvtcmci",
        IcrLow => "icr",
        IcrHigh => "icr2",
        LvtTimer => "lvtt",
        LvtThermal => "lvtthmr",
        LvtPmc => "lvtpc",
        LvtLint0 => "lvt0",
        LvtLint1 => "lvt1",
        LvtError => "lvterr",
        Tmict => "tmict",
        Tmcct => "tmcct",
        Tdcr => "tdcr",
        SelfIpi => "self_ipi",
        _ => $"0x{offset:x}",
    };
}

/// <summary>The local vector table entries, in KVM's order (lapic.h LVT_*).</summary>
public enum LvtIndex
{
    Timer = 0,
    Thermal = 1,
    Pmc = 2,
    Lint0 = 3,
    Lint1 = 4,
    Error = 5,
    Cmci = 6,
}

/// <summary>LVT timer modes, LVTT bits 18:17 (SDM 11.5.1).</summary>
public enum TimerMode : byte
{
    OneShot = 0,
    Periodic = 1,
    TscDeadline = 2,
    Reserved = 3,
}

/// <summary>Error Status Register bits (SDM 11.5.3, figure 11-9).</summary>
[Flags]
public enum ApicError : uint
{
    None = 0,
    SendChecksum = 1 << 0,
    ReceiveChecksum = 1 << 1,
    SendAccept = 1 << 2,
    ReceiveAccept = 1 << 3,
    RedirectableIpi = 1 << 4,
    SendIllegalVector = 1 << 5,
    ReceiveIllegalVector = 1 << 6,
    IllegalRegisterAddress = 1 << 7,
}

/// <summary>Bits shared by LVT entries and the ICR.</summary>
public static class ApicBits
{
    public const uint VectorMask = 0xFF, DeliveryModeMask = 0x700, DestLogical = 1 << 11, DeliveryStatus = 1 << 12;
    public const uint Polarity = 1 << 13, RemoteIrr = 1 << 14, LevelAssert = 1 << 14, TriggerLevel = 1 << 15, Masked = 1 << 16;
    public const uint TimerModeShift = 17;
    public const uint SvrEnable = 1 << 8, SvrFocusDisable = 1 << 9;

    /// <summary>IA32_APIC_BASE bits (SDM 11.4.4).</summary>
    public const ulong BaseBsp = 1 << 8, BaseExtd = 1 << 10, BaseEnable = 1 << 11;

    public const ulong DefaultBase = 0xFEE00000;

    public const uint XApicBroadcast = 0xFF, X2ApicBroadcast = 0xFFFFFFFF;
}
