namespace ActorVm.Host;

/// <summary>
/// What <c>actorvm run</c> was given on its command line, after parsing. Null means "not given":
/// the setting then comes from the scenario, the environment or appsettings.json
/// (<see cref="Configuration.RunSettingsResolver"/>).
/// </summary>
public sealed record RunOptions
{
    public string? Scenario { get; init; }

    public string? Kernel { get; init; }

    public string? Program { get; init; }

    public ulong? MemoryMiB { get; init; }

    public int? Vcpus { get; init; }

    public string? Append { get; init; }

    public string? Initrd { get; init; }

    public string? Apic { get; init; }

    public string? Timer { get; init; }

    public string? ImmediateExit { get; init; }

    public string? Dispatcher { get; init; }

    public double? TimeoutSeconds { get; init; }

    public long? MaxInstructions { get; init; }

    /// <summary>QEMU-style CPU model and feature switches (<see cref="CpuModelOption"/>).</summary>
    public string Cpu { get; init; } = "max";

    /// <summary>QEMU-style <c>-device</c> arguments (<see cref="DeviceOption"/>).</summary>
    public IReadOnlyList<string> Devices { get; init; } = [];

    public string? TraceFile { get; init; }

    public string? TraceEvents { get; init; }

    public string? TraceJsonFile { get; init; }

    public string? StatsJsonFile { get; init; }

    /// <summary>Use the synchronous single-vCPU runner instead of the actor VM (comparisons, debugging).</summary>
    public bool Synchronous { get; init; }
}
