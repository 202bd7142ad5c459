namespace ActorVm.Hardware.X86;

/// <summary>
/// What the virtual processor reports through CPUID and implements: a truthful description,
/// since every feature bit set here is one the interpreter executes. Switches here can only
/// take features away (e.g. <c>-x2apic</c>); bits for instructions are also gated on the
/// instruction table (<see cref="Cpuid"/>), so nothing unimplemented is ever advertised.
/// </summary>
public sealed record CpuModel
{
    public const ulong DefaultApicBase = 0xFEE00000;

    public static CpuModel Default { get; } = new();

    /// <summary>Family 6, model 0x55 style signature: EAX of CPUID.1 and EDX at reset.</summary>
    public uint Signature { get; init; } = 0x000506E3;

    public int PhysicalAddressBits { get; init; } = 40;

    public ulong PhysicalAddressMask => (1UL << PhysicalAddressBits) - 1;

    public bool X2Apic { get; init; } = true;

    public bool TscDeadline { get; init; } = true;

    public bool Has1GPages { get; init; } = true;

    public bool Nx { get; init; } = true;

    public bool Movbe { get; init; } = true;

    /// <summary>CPUID.1:ECX.HYPERVISOR and the KVM leaves at 0x40000000.</summary>
    public bool Hypervisor { get; init; } = true;

    /// <summary>KVM_FEATURE_PV_SEND_IPI in CPUID 0x40000001 (the run loop handles KVM_HC_SEND_IPI).</summary>
    public bool PvSendIpi { get; init; } = true;

    /// <summary>Logical processors in the package (CPUID.1:EBX[23:16], CPUID.0BH level 1).</summary>
    public int LogicalProcessors { get; init; } = 1;

    /// <summary>Guest TSC frequency in Hz (CPUID.15H and the KVM timing leaf).</summary>
    public ulong TscHz { get; init; } = 2_000_000_000;
}
