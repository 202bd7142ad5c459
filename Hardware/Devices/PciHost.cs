namespace ActorVm.Hardware.Devices;

/// <summary>
/// PCI configuration mechanism #1 (0xCF8 address, 0xCFC-0xCFF data) on a bus with no devices:
/// the address register reads back, every configuration read returns all-ones (no device
/// responds, so vendor ID 0xFFFF), and writes are ignored.
/// </summary>
public sealed class PciHost : IIoDevice
{
    public const ushort AddressPort = 0xCF8, DataPort = 0xCFC;

    private uint _address;

    public void Attach(IoBus bus)
    {
        // Only 0xCF8 itself: a byte access to 0xCF9 is the reset control register (SystemControl).
        bus.Register(AddressPort, 1, this);
        bus.Register(DataPort, 4, this);
    }

    public uint In(ushort port, int size) => port == AddressPort ? Volatile.Read(ref _address) : uint.MaxValue;

    public void Out(ushort port, int size, uint value)
    {
        if (port == AddressPort && size == 4)
        {
            Volatile.Write(ref _address, value & 0x80FFFFFC);
        }
    }
}
