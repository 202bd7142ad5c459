namespace ActorVm.Hardware.Memory;

/// <summary>
/// A device claiming a range of guest-physical addresses. It is called synchronously on the
/// accessing vCPU's thread (Firecracker's model for in-VMM MMIO), so an implementation that is
/// reachable from several vCPUs must be thread-safe.
/// </summary>
public interface IMmioDevice
{
    /// <summary>Reads <paramref name="size"/> bytes (1, 2, 4 or 8) at <paramref name="offset"/> into the region.</summary>
    ulong Read(ulong offset, int size);

    /// <summary>Writes the low <paramref name="size"/> bytes of <paramref name="value"/> at <paramref name="offset"/>.</summary>
    void Write(ulong offset, int size, ulong value);
}
