namespace ActorVm.Hardware.Guests.Smp;

/// <summary>How guest code reaches its local APIC.</summary>
public enum GuestApicMode
{
    /// <summary>The 4 KiB MMIO page at 0xFEE00000 (SDM 11.4.1); 8-bit APIC IDs, at most 255 CPUs.</summary>
    XApic,

    /// <summary>MSRs 0x800-0x8FF after setting IA32_APIC_BASE.EXTD (SDM 11.12); 32-bit APIC IDs.</summary>
    X2Apic,
}
