namespace ActorVm.Hardware.Devices;

/// <summary>
/// The I/O port space: port ranges mapped to devices. Unclaimed ports read as all-ones and
/// ignore writes, like an ISA bus with nothing driving it.
/// </summary>
public sealed class IoBus
{
    private readonly IIoDevice?[] _ports = new IIoDevice?[0x10000];

    public void Register(ushort first, int count, IIoDevice device)
    {
        for (var p = first; p < first + count; p++)
        {
            if (_ports[p] is not null)
            {
                throw new InvalidOperationException($"I/O port 0x{p:x} is already claimed by {_ports[p]!.GetType().Name}");
            }

            _ports[p] = device;
        }
    }

    public bool IsClaimed(ushort port) => _ports[port] is not null;

    public uint In(ushort port, int size)
    {
        var device = _ports[port];
        return device is null ? SizeMask(size) : device.In(port, size) & SizeMask(size);
    }

    public void Out(ushort port, int size, uint value)
    {
        _ports[port]?.Out(port, size, value & SizeMask(size));
    }

    private static uint SizeMask(int size) => size >= 4 ? uint.MaxValue : (1u << (size * 8)) - 1;
}
