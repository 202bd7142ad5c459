namespace ActorVm.Hardware.Devices;

/// <summary>
/// The MC146818 RTC and CMOS RAM behind ports 0x70 (index; bit 7 masks NMI) and 0x71 (data),
/// with the memory-size bytes QEMU's pc machine stores (hw/i386/pc.c pc_cmos_init): base memory
/// (0x15/0x16), extended memory in KiB (0x17/0x18 and 0x30/0x31), memory above 16 MiB in 64 KiB
/// units (0x34/0x35), above 4 GiB (0x5B-0x5D) and the CPU count (0x5F). Time registers read the
/// host's UTC clock in BCD, 24-hour mode (status B = 0x02), never mid-update (UIP = 0).
/// </summary>
public sealed class CmosRtc : IIoDevice
{
    public const ushort IndexPort = 0x70, DataPort = 0x71;

    private readonly byte[] _ram = new byte[128];
    private readonly Func<DateTime> _now;
    private readonly object _lock = new();
    private byte _index;

    public CmosRtc(ulong ramBytes, int vcpus, Func<DateTime>? now = null)
    {
        _now = now ?? (() => DateTime.UtcNow);
        _ram[0x0A] = 0x26;
        _ram[0x0B] = 0x02;
        _ram[0x0D] = 0x80;
        _ram[0x15] = 0x80; // 640 KiB of base memory
        _ram[0x16] = 0x02;
        var belowFourG = Math.Min(ramBytes, 0xC000_0000UL);
        var extKiB = Math.Min((belowFourG >> 10) - 1024, 0xFFFFUL);
        _ram[0x17] = _ram[0x30] = (byte)extKiB;
        _ram[0x18] = _ram[0x31] = (byte)(extKiB >> 8);
        var above16M = belowFourG > 16 << 20 ? Math.Min((belowFourG - (16 << 20)) >> 16, 0xFFFFUL) : 0;
        _ram[0x34] = (byte)above16M;
        _ram[0x35] = (byte)(above16M >> 8);
        var above4G = ramBytes > 0xC000_0000UL ? (ramBytes - 0xC000_0000UL) >> 16 : 0;
        _ram[0x5B] = (byte)above4G;
        _ram[0x5C] = (byte)(above4G >> 8);
        _ram[0x5D] = (byte)(above4G >> 16);
        _ram[0x5F] = (byte)(vcpus - 1);
    }

    /// <summary>True while the guest masks NMIs through bit 7 of the index port.</summary>
    public bool NmiMasked { get; private set; }

    public void Attach(IoBus bus) => bus.Register(IndexPort, 2, this);

    public uint In(ushort port, int size)
    {
        lock (_lock)
        {
            return port == DataPort ? Read(_index) : _index;
        }
    }

    public void Out(ushort port, int size, uint value)
    {
        lock (_lock)
        {
            if (port == IndexPort)
            {
                _index = (byte)(value & 0x7F);
                NmiMasked = (value & 0x80) != 0;
            }
            else if (_index is >= 0x0E or 0x0B or 0x0A)
            {
                _ram[_index] = (byte)value;
            }
        }
    }

    private byte Read(byte index)
    {
        var t = _now();
        return index switch
        {
            0x00 => Bcd(t.Second),
            0x02 => Bcd(t.Minute),
            0x04 => Bcd(t.Hour),
            0x06 => (byte)((int)t.DayOfWeek + 1),
            0x07 => Bcd(t.Day),
            0x08 => Bcd(t.Month),
            0x09 => Bcd(t.Year % 100),
            0x32 => Bcd(t.Year / 100),
            0x0C => 0, // no pending RTC interrupts: periodic/alarm/update IRQs are not modelled
            _ => _ram[index],
        };
    }

    private static byte Bcd(int v) => (byte)(((v / 10) << 4) | (v % 10));
}
