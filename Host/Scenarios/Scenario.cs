namespace ActorVm.Host.Scenarios;

/// <summary>A scenario file (configs/*.json): what machine to build, what to run, what must come out.</summary>
public sealed record Scenario(
    string Name,
    string Description,
    MachineSpec Machine,
    GuestSpec Guest,
    LimitsSpec Limits,
    Expectations Expect)
{
    /// <summary>The file it was read from (kernel paths are relative to its folder).</summary>
    public string? SourcePath { get; init; }
}

public sealed record MachineSpec(
    int? Vcpus = null,
    int? MemoryMiB = null,
    string? Apic = null,
    string? Timer = null,
    string? ImmediateExit = null,
    long? TscHz = null,
    string? Dispatcher = null);

/// <summary>Exactly one of <see cref="Kernel"/> and <see cref="Program"/>.</summary>
public sealed record GuestSpec(KernelSpec? Kernel = null, ProgramSpec? Program = null);

public sealed record KernelSpec(string Path, string? Format = null, string? Cmdline = null, string? Initrd = null);

public sealed record ProgramSpec(string Name, IReadOnlyDictionary<string, string>? Args = null);

public sealed record LimitsSpec(double? WallSeconds = null, long? GuestInstructions = null);

public sealed record Expectations(
    int? ExitStatus = null,
    SerialExpectations? Serial = null,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>>? Stats = null);

public sealed record SerialExpectations(
    IReadOnlyList<string>? Contains = null,
    IReadOnlyList<string>? InOrder = null,
    IReadOnlyList<string>? NotContains = null);
