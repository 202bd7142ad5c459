namespace ActorVm.Hardware.Apic;

/// <summary>ICR delivery modes (SDM 11.6.1), bits 10:8.</summary>
public enum DeliveryMode : byte
{
    Fixed = 0,
    LowestPriority = 1,
    Smi = 2,
    Reserved3 = 3,
    Nmi = 4,
    Init = 5,
    StartUp = 6,
    ExtInt = 7,
}

/// <summary>ICR destination shorthand (bits 19:18).</summary>
public enum Shorthand : byte
{
    None = 0,
    Self = 1,
    AllIncludingSelf = 2,
    AllExcludingSelf = 3,
}

/// <summary>
/// An interrupt message on the APIC bus: what an ICR write (or SELF_IPI, an IOAPIC redirection
/// entry, an MSI) sends. <see cref="Destination"/> is the 8-bit xAPIC or 32-bit x2APIC destination.
/// </summary>
public readonly record struct InterruptMessage(
    byte Vector,
    DeliveryMode Mode,
    bool Logical,
    bool Level,
    bool Assert,
    Shorthand Shorthand,
    uint Destination,
    int SourceVcpu,
    bool X2ApicFormat)
{
    /// <summary>ICR low dword for traces (kvm_apic_ipi's icr_low).</summary>
    public uint IcrLow => Vector | ((uint)Mode << 8) | (Logical ? 1u << 11 : 0) | (Assert ? 1u << 14 : 0) | (Level ? 1u << 15 : 0) | ((uint)Shorthand << 18);
}

/// <summary>Side effects of a register write that the LAPIC's owner must carry out.</summary>
public readonly record struct ApicWriteEffects(
    InterruptMessage? Ipi = null,
    byte? LevelEoiVector = null,
    bool EventNeeded = false,
    bool TimerChanged = false,
    bool ApicBaseChanged = false)
{
    public static ApicWriteEffects None => default;
}
