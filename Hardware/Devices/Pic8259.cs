namespace ActorVm.Hardware.Devices;

/// <summary>
/// The cascaded 8259A pair of the PC (master 0x20/0x21, slave 0xA0/0xA1 on master IRQ 2), with
/// the initialisation sequence (ICW1-ICW4), the mask register (OCW1), EOI commands (OCW2) and
/// IRR/ISR reads (OCW3), fully nested priority with IRQ 0 highest, edge triggering, and the
/// ExtINT acknowledge cycle. Its INTR output is reported through <see cref="IntrChanged"/>, to
/// be wired to the BSP's LINT0.
/// </summary>
public sealed class Pic8259 : IIoDevice
{
    public const ushort MasterCommand = 0x20, MasterData = 0x21, SlaveCommand = 0xA0, SlaveData = 0xA1;

    private readonly Chip _master = new();
    private readonly Chip _slave = new();
    private readonly object _lock = new();
    private bool _intr;

    /// <summary>Called with the new INTR level whenever it changes.</summary>
    public event Action<bool>? IntrChanged;

    public void Attach(IoBus bus)
    {
        bus.Register(MasterCommand, 2, this);
        bus.Register(SlaveCommand, 2, this);
    }

    private sealed class Chip
    {
        public byte Irr, Isr, Imr = 0xFF, VectorBase, Lines;
        public int InitStep; // 0 ready, 2 expecting ICW2, 3 ICW3, 4 ICW4
        public bool ExpectIcw4, AutoEoi, ReadIsr;

        public int HighestPending()
        {
            var pending = (byte)(Irr & ~Imr);
            for (var i = 0; i < 8; i++)
            {
                if ((Isr & (1 << i)) != 0)
                {
                    return -1; // a higher- or equal-priority request is in service
                }

                if ((pending & (1 << i)) != 0)
                {
                    return i;
                }
            }

            return -1;
        }
    }

    /// <summary>Drives IRQ line 0-15 (edge-triggered: a rising edge latches the request).</summary>
    public void SetIrq(int line, bool level)
    {
        lock (_lock)
        {
            var chip = line < 8 ? _master : _slave;
            var bit = (byte)(1 << (line & 7));
            if (level && (chip.Lines & bit) == 0)
            {
                chip.Irr |= bit;
            }

            chip.Lines = level ? (byte)(chip.Lines | bit) : (byte)(chip.Lines & ~bit);
            Update();
        }
    }

    /// <summary>The INTA cycle: returns the vector of the highest pending request and puts it in service (spurious IRQ 7/15 if none).</summary>
    public byte Acknowledge()
    {
        lock (_lock)
        {
            var irq = _master.HighestPending();
            byte vector;
            if (irq < 0)
            {
                vector = (byte)(_master.VectorBase + 7);
            }
            else if (irq == 2)
            {
                var s = _slave.HighestPending();
                _master.Irr &= 0xFB;
                if (!_master.AutoEoi) _master.Isr |= 0x04;
                if (s < 0)
                {
                    vector = (byte)(_slave.VectorBase + 7);
                }
                else
                {
                    _slave.Irr &= (byte)~(1 << s);
                    if (!_slave.AutoEoi) _slave.Isr |= (byte)(1 << s);
                    vector = (byte)(_slave.VectorBase + s);
                }
            }
            else
            {
                _master.Irr &= (byte)~(1 << irq);
                if (!_master.AutoEoi) _master.Isr |= (byte)(1 << irq);
                vector = (byte)(_master.VectorBase + irq);
            }

            Update();
            return vector;
        }
    }

    public bool Intr
    {
        get
        {
            lock (_lock)
            {
                return _intr;
            }
        }
    }

    public uint In(ushort port, int size)
    {
        lock (_lock)
        {
            var chip = port is MasterCommand or MasterData ? _master : _slave;
            return (port & 1) != 0 ? chip.Imr : chip.ReadIsr ? chip.Isr : chip.Irr;
        }
    }

    public void Out(ushort port, int size, uint value)
    {
        lock (_lock)
        {
            var chip = port is MasterCommand or MasterData ? _master : _slave;
            var v = (byte)value;
            if ((port & 1) == 0)
            {
                if ((v & 0x10) != 0)
                {
                    // ICW1: reset, mask nothing yet, expect ICW2.
                    chip.InitStep = 2;
                    chip.ExpectIcw4 = (v & 1) != 0;
                    chip.Imr = 0;
                    chip.Isr = chip.Irr = 0;
                    chip.AutoEoi = false;
                }
                else if ((v & 0x18) == 0x08)
                {
                    if ((v & 2) != 0) chip.ReadIsr = (v & 1) != 0; // OCW3
                }
                else
                {
                    Eoi(chip, v); // OCW2
                }
            }
            else
            {
                switch (chip.InitStep)
                {
                    case 2:
                        chip.VectorBase = (byte)(v & 0xF8);
                        chip.InitStep = 3;
                        break;
                    case 3:
                        chip.InitStep = chip.ExpectIcw4 ? 4 : 0;
                        break;
                    case 4:
                        chip.AutoEoi = (v & 2) != 0;
                        chip.InitStep = 0;
                        break;
                    default:
                        chip.Imr = v;
                        break;
                }
            }

            Update();
        }
    }

    private static void Eoi(Chip chip, byte ocw2)
    {
        switch (ocw2 >> 5)
        {
            case 1: // non-specific EOI: clear the highest-priority in-service bit
                for (var i = 0; i < 8; i++)
                {
                    if ((chip.Isr & (1 << i)) != 0)
                    {
                        chip.Isr &= (byte)~(1 << i);
                        break;
                    }
                }

                break;
            case 3: // specific EOI
                chip.Isr &= (byte)~(1 << (ocw2 & 7));
                break;
        }
    }

    private void Update()
    {
        // The slave's INTR is the master's IRQ 2 line (edge).
        var slavePending = _slave.HighestPending() >= 0;
        if (slavePending) _master.Irr |= 0x04; else if ((_master.Isr & 0x04) == 0) _master.Irr &= 0xFB;
        var intr = _master.HighestPending() >= 0;
        if (intr != _intr)
        {
            _intr = intr;
            IntrChanged?.Invoke(intr);
        }
    }
}
