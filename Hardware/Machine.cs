using ActorVm.Hardware.Apic;
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

    /// <summary>COM1, when the machine was built by <see cref="CreatePc"/>.</summary>
    public Uart16550? Serial { get; private set; }

    /// <summary>The isa-debug-exit device at 0xF4, when the machine was built by <see cref="CreatePc"/>.</summary>
    public DebugExit? DebugExit { get; private set; }

    /// <summary>The QEMU pc devices (fw_cfg, PIC, PIT, CMOS, IOAPIC, pc-testdev, ACPI, resets), when built by <see cref="CreatePc"/>.</summary>
    public PcPlatform? Platform { get; private set; }

    /// <summary>
    /// Connects the platform's interrupt messages (the IOAPIC's) to the VM's APIC bus; whoever
    /// runs the vCPUs with local APICs (the actor VM) connects it before the guest runs. Until
    /// then, and under a runner without APICs, messages are dropped and counted.
    /// </summary>
    public void ConnectApicBus(Action<InterruptMessage> bus) => _apicBus = bus;

    /// <summary>Interrupt messages sent while no APIC bus was connected.</summary>
    public long DroppedInterruptMessages => Interlocked.Read(ref _droppedMessages);

    private Action<InterruptMessage>? _apicBus;
    private long _droppedMessages;

    private void SendToApicBus(InterruptMessage message)
    {
        if (Volatile.Read(ref _apicBus) is { } bus)
        {
            bus(message);
        }
        else
        {
            Interlocked.Increment(ref _droppedMessages);
        }
    }

    /// <summary>Accesses to guest-physical addresses with no RAM and no device (see <see cref="Exits.UnclaimedMmioExit"/>).</summary>
    public Exits.UnclaimedMmioCounters UnclaimedMmio { get; } = new();

    /// <summary>
    /// A PC as <c>qemu-system-x86_64 -nographic -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x4 -device pc-testdev</c>
    /// gives it: RAM, COM1 at 0x3F8 writing to <paramref name="serialOutput"/> (discarded when
    /// null), the debug-exit port at 0xF4 and the <see cref="PcPlatform"/> devices (fw_cfg
    /// reporting every vCPU, IOAPIC at 0xFEC00000 sending to the APIC bus, ACPI tables, …).
    /// Every vCPU is in its reset state; a boot loader (<see cref="Boot.MultibootLoader"/>) sets up the BSP.
    /// </summary>
    public static Machine CreatePc(MachineConfig config, Action<ReadOnlySpan<byte>>? serialOutput = null, ITscClock? clock = null)
    {
        var machine = new Machine(config, clock);
        machine.Serial = new Uart16550(serialOutput ?? (_ => { }));
        machine.DebugExit = new DebugExit();
        machine.Io.Register(Uart16550.Com1, Uart16550.PortCount, machine.Serial);
        machine.Io.Register(DebugExit.DefaultPort, DebugExit.PortCount, machine.DebugExit);
        machine.Platform = new PcPlatform(machine, machine.SendToApicBus, maxCpus: config.VcpuCount);
        return machine;
    }

    public void Dispose() => Memory.Dispose();
}
