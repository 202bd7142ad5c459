namespace ActorVm.Actors.Vcpu;

/// <summary>
/// Request bit numbers (spec §2; include/linux/kvm_host.h and asm/kvm_host.h). Generic requests
/// use bits 0-7, x86 arch request n uses bit 8 + n.
/// </summary>
public static class KvmRequest
{
    public const int TlbFlush = 0;
    public const int VmDead = 1;
    public const int Unblock = 2;

    private const int Arch = 8;
    public const int MigrateTimer = Arch + 0;
    public const int TripleFault = Arch + 2;
    public const int ClockUpdate = Arch + 4;
    public const int Event = Arch + 6;
    public const int Nmi = Arch + 9;

    /// <summary>Bits the run loop services or clears, with the names statistics use.</summary>
    public static readonly IReadOnlyList<(int Bit, string Name)> Modelled =
    [
        (TlbFlush, "TLB_FLUSH"), (VmDead, "VM_DEAD"), (Unblock, "UNBLOCK"), (TripleFault, "TRIPLE_FAULT"),
        (ClockUpdate, "CLOCK_UPDATE"), (Event, "EVENT"), (Nmi, "NMI"),
    ];

    public static string Name(int bit) => Modelled.FirstOrDefault(m => m.Bit == bit).Name ?? $"REQ_{bit}";
}
