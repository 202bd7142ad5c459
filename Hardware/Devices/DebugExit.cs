namespace ActorVm.Hardware.Devices;

/// <summary>
/// QEMU's isa-debug-exit (hw/misc/debugexit.c semantics): a write of V to the port ends the VM
/// with process exit status (V &lt;&lt; 1) | 1. Reads return all-ones like an undriven port. The
/// first write wins; later writes (another vCPU racing) are ignored. The runner and the actors
/// observe <see cref="IsRequested"/>/<see cref="ExitStatus"/> or subscribe to <see cref="Requested"/>.
/// </summary>
public sealed class DebugExit : IIoDevice
{
    public const ushort DefaultPort = 0xF4;
    public const int PortCount = 4;

    private int _status = -1;

    public DebugExit(ushort basePort = DefaultPort)
    {
        BasePort = basePort;
    }

    public ushort BasePort { get; }

    /// <summary>Raised once, on the writing vCPU's thread, with the process exit status.</summary>
    public event Action<int>? Requested;

    public bool IsRequested => Volatile.Read(ref _status) >= 0;

    /// <summary>The requested process exit status, or null if the guest has not written the port.</summary>
    public int? ExitStatus => Volatile.Read(ref _status) is var s and >= 0 ? s : null;

    /// <summary>The exit status QEMU gives for a written value (an int exit status truncated to 8 bits by the OS).</summary>
    public static int StatusFor(uint value) => (int)(((value << 1) | 1) & 0xFF);

    public uint In(ushort port, int size) => uint.MaxValue;

    public void Out(ushort port, int size, uint value)
    {
        var status = StatusFor(value);
        if (Interlocked.CompareExchange(ref _status, status, -1) == -1)
        {
            Requested?.Invoke(status);
        }
    }
}
