using System.Buffers.Binary;
using System.Text;

namespace ActorVm.Hardware.Devices;

/// <summary>
/// QEMU's fw_cfg in its legacy port form: a 16-bit selector at 0x510 and a byte-wide data port at
/// 0x511 that streams the selected item (docs/specs/fw_cfg.rst). Selecting an item rewinds it;
/// reading past its end, or an unknown key, yields zeros as QEMU does.
/// </summary>
public sealed class FwCfg : IIoDevice
{
    public const ushort SelectorPort = 0x510;
    public const ushort DataPort = 0x511;

    public const ushort Signature = 0x00, Id = 0x01, RamSize = 0x03, NoGraphic = 0x04, NbCpus = 0x05, MaxCpus = 0x0F;

    private readonly Dictionary<ushort, byte[]> _items = [];
    private readonly object _lock = new();
    private byte[] _current = [];
    private int _offset;

    public FwCfg(int vcpus, ulong ramBytes, int maxCpus)
    {
        _items[Signature] = Encoding.ASCII.GetBytes("QEMU");
        _items[Id] = Le32(1); // traditional interface only, no DMA
        _items[RamSize] = Le64(ramBytes);
        _items[NoGraphic] = Le16(1);
        _items[NbCpus] = Le16((ushort)vcpus);
        _items[MaxCpus] = Le16((ushort)maxCpus);
    }

    /// <summary>Adds or replaces an item (used for tests and later file entries).</summary>
    public void Set(ushort key, byte[] data)
    {
        lock (_lock)
        {
            _items[key] = data;
        }
    }

    public uint In(ushort port, int size)
    {
        if (port != DataPort)
        {
            return 0;
        }

        lock (_lock)
        {
            // Wider reads of the data port return consecutive bytes (QEMU accepts 1-8 byte reads).
            uint value = 0;
            for (var i = 0; i < size; i++)
            {
                value |= (uint)(_offset < _current.Length ? _current[_offset] : 0) << (8 * i);
                _offset++;
            }

            return value;
        }
    }

    public void Out(ushort port, int size, uint value)
    {
        if (port != SelectorPort)
        {
            return;
        }

        lock (_lock)
        {
            _current = _items.GetValueOrDefault((ushort)value, []);
            _offset = 0;
        }
    }

    private static byte[] Le16(ushort v)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, v);
        return b;
    }

    private static byte[] Le32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private static byte[] Le64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }
}
