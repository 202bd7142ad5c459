using ActorVm.Actors.Vm;
using ActorVm.Hardware.Guests.Smp;
using ActorVm.Host.Scenarios;

namespace ActorVm.Host.Configuration;

/// <summary>Where a resolved setting came from (highest layer that had it).</summary>
public enum SettingSource
{
    Default,
    AppSettings,
    Environment,
    Scenario,
    CommandLine,
}

/// <summary>A machine and a guest, every setting resolved from its layers (<see cref="RunSettingsResolver"/>).</summary>
public sealed record RunSettings
{
    public required string Name { get; init; }

    public required int Vcpus { get; init; }

    public required ulong MemoryMiB { get; init; }

    public required GuestApicMode Apic { get; init; }

    public required TimerBackend Timer { get; init; }

    public required ImmediateExitMethod ImmediateExit { get; init; }

    public required VcpuDispatcher Dispatcher { get; init; }

    public required ulong TscHz { get; init; }

    public double? TimeoutSeconds { get; init; }

    public long? MaxInstructions { get; init; }

    /// <summary>Kernel image path (absolute), or null with <see cref="Program"/>.</summary>
    public string? Kernel { get; init; }

    public string? Program { get; init; }

    public IReadOnlyDictionary<string, string> ProgramArgs { get; init; } = new Dictionary<string, string>();

    public string? Append { get; init; }

    public string? Initrd { get; init; }

    public Expectations Expect { get; init; } = new();

    /// <summary>Which layer each setting came from (keys as in appsettings.json's ActorVm section).</summary>
    public IReadOnlyDictionary<string, SettingSource> Sources { get; init; } = new Dictionary<string, SettingSource>();
}
