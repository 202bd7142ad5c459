namespace ActorVm.Host;

/// <summary>What <c>actorvm run</c> was asked to do, after option parsing.</summary>
public sealed record RunOptions
{
    public string? Kernel { get; init; }

    public string? Program { get; init; }

    public ulong MemoryMiB { get; init; } = 128;

    public int Vcpus { get; init; } = 1;

    public string? Append { get; init; }

    public string? Initrd { get; init; }

    public double? TimeoutSeconds { get; init; }

    public long? MaxInstructions { get; init; }

    /// <summary>QEMU-style CPU model and feature switches (<see cref="CpuModelOption"/>).</summary>
    public string Cpu { get; init; } = "max";

    /// <summary>QEMU-style <c>-device</c> arguments (<see cref="DeviceOption"/>).</summary>
    public IReadOnlyList<string> Devices { get; init; } = [];
}
