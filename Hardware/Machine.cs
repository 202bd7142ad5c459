using ActorVm.Hardware.X86;
using ActorVm.Hardware.Devices;
using ActorVm.Hardware.Memory;

namespace ActorVm.Hardware;

/// <summary>Shape of a virtual machine: what <see cref="Machine"/> is built from.</summary>
public sealed record MachineConfig(int VcpuCount = 1, ulong MemoryMiB = 128, ulong TscHz = 2_000_000_000)
{
    public CpuModel CpuModel { get; init; } = CpuModel.Default with { TscHz = TscHz };
}

/// <summary>
/// The machine without its threads: guest memory, the port bus with its devices, the VM's
/// clock and one <see cref="Cpu"/> per vCPU. Who runs the vCPUs (the actor system, or a
/// synchronous runner in tests) is decided outside.
/// </summary>
public sealed class Machine : IDisposable
{
    public Machine(MachineConfig config, ITscClock? clock = null)
    {
        Config = config;
        Memory = new GuestMemory(config.MemoryMiB << 20);
        Io = new IoBus();
        Clock = clock ?? new HostTscClock(config.TscHz);
        Cpus = [.. Enumerable.Range(0, config.VcpuCount).Select(i => new Cpu(i, Memory, Clock, config.CpuModel))];
    }

    public MachineConfig Config { get; }

    public GuestMemory Memory { get; }

    public IoBus Io { get; }

    public ITscClock Clock { get; }

    public IReadOnlyList<Cpu> Cpus { get; }

    public void Dispose() => Memory.Dispose();
}
