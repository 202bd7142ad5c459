namespace ActorVm.Hardware.X86;

/// <summary>Interruption types of the VM-entry interruption-information field (SDM 25.8.3).</summary>
public enum EventType
{
    ExternalInterrupt = 0,
    Nmi = 2,
    HardwareException = 3,
    SoftwareInterrupt = 4,
    PrivilegedSoftwareException = 5,
    SoftwareException = 6,
}

/// <summary>An event injected at VM-entry, delivered before the first guest instruction.</summary>
public readonly record struct EventInjection(byte Vector, EventType Type, uint? ErrorCode = null)
{
    /// <summary>VMX interruption-information encoding: vector, type, error-code-valid, valid.</summary>
    public uint IntrInfo => Vector | ((uint)Type << 8) | (ErrorCode.HasValue ? 1u << 11 : 0) | (1u << 31);
}
