namespace ActorVm.Hardware.Memory;

/// <summary>A guest-physical range [Base, Base + Length) served by a device.</summary>
public sealed record MmioRegion(ulong Base, ulong Length, IMmioDevice Device, string Name)
{
    public bool Contains(ulong address) => address - Base < Length;
}
