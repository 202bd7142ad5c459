using ActorVm.Hardware.Memory;

namespace ActorVm.Hardware.Devices;

/// <summary>
/// QEMU's pc-testdev (hw/misc/pc-testdev.c), which kvm-unit-tests use to reach emulator paths:
/// a 32-bit scratch register at ports 0xE0-0xE3 (and byte-wise at 0xE8-0xEB), a "flush page"
/// command at 0xE4, IRQ-line ports 0x2000+n that drive interrupt line n, and a RAM-like MMIO
/// window of 64 KiB at 0xFF000000 that forces accesses through the MMIO path.
/// </summary>
public sealed class PcTestDev(IInterruptSink irqs, Action<ulong>? flushPage = null) : IIoDevice, IMmioDevice
{
    public const ushort ScratchPort = 0xE0, FlushPort = 0xE4, ScratchBytePort = 0xE8, IrqPortBase = 0x2000;
    public const int IrqLines = 24;
    public const ulong IomemBase = 0xFF000000;
    public const int IomemLength = 0x10000;

    private readonly byte[] _iomem = new byte[IomemLength];
    private readonly object _lock = new();
    private uint _scratch;

    public void Attach(IoBus bus, GuestMemory memory)
    {
        bus.Register(ScratchPort, 4, this);
        bus.Register(FlushPort, 4, this);
        bus.Register(ScratchBytePort, 4, this);
        bus.Register(IrqPortBase, IrqLines, this);
        memory.AddRegion(new MmioRegion(IomemBase, IomemLength, this, "pc-testdev-iomem"));
    }

    public uint In(ushort port, int size)
    {
        lock (_lock)
        {
            return port switch
            {
                >= ScratchPort and < ScratchPort + 4 => ScratchRead(port - ScratchPort, size),
                >= ScratchBytePort and < ScratchBytePort + 4 => ScratchRead(port - ScratchBytePort, size),
                _ => 0,
            };
        }
    }

    public void Out(ushort port, int size, uint value)
    {
        switch (port)
        {
            case >= ScratchPort and < ScratchPort + 4:
                lock (_lock) ScratchWrite(port - ScratchPort, size, value);
                break;
            case >= ScratchBytePort and < ScratchBytePort + 4:
                lock (_lock) ScratchWrite(port - ScratchBytePort, size, value);
                break;
            case FlushPort:
                flushPage?.Invoke(value & ~0xFFFUL);
                break;
            case >= IrqPortBase and < IrqPortBase + IrqLines:
                irqs.SetIrq(port - IrqPortBase, value != 0);
                break;
        }
    }

    private uint ScratchRead(int offset, int size)
    {
        var shift = offset * 8;
        var mask = size >= 4 ? uint.MaxValue : (1u << (size * 8)) - 1;
        return (_scratch >> shift) & mask;
    }

    private void ScratchWrite(int offset, int size, uint value)
    {
        var shift = offset * 8;
        var mask = (size >= 4 ? uint.MaxValue : (1u << (size * 8)) - 1) << shift;
        _scratch = (_scratch & ~mask) | ((value << shift) & mask);
    }

    public ulong Read(ulong offset, int size)
    {
        lock (_lock)
        {
            ulong v = 0;
            for (var i = 0; i < size && (int)offset + i < IomemLength; i++)
            {
                v |= (ulong)_iomem[(int)offset + i] << (8 * i);
            }

            return v;
        }
    }

    public void Write(ulong offset, int size, ulong value)
    {
        lock (_lock)
        {
            for (var i = 0; i < size && (int)offset + i < IomemLength; i++)
            {
                _iomem[(int)offset + i] = (byte)(value >> (8 * i));
            }
        }
    }
}
