namespace ActorVm.Hardware.Devices;

/// <summary>
/// A 16550A UART with the registers polling drivers use (PC16550D data sheet, table 2):
/// THR/RBR, IER, IIR/FCR, LCR (DLAB selects the divisor latch at offsets 0/1), MCR (with
/// loopback), LSR, MSR and SCR. Transmission is instantaneous: every byte written to THR goes to
/// <see cref="Output"/> at once, so LSR always shows THRE|TEMT. Received bytes queued with
/// <see cref="Receive"/> set LSR.DR. Interrupt lines are not wired (no PIC yet); IIR still
/// reports the highest pending enabled source as a driver polling it would expect.
/// Thread-safe: several vCPUs may poke the same port.
/// </summary>
public sealed class Uart16550 : IIoDevice
{
    public const ushort Com1 = 0x3F8;
    public const int PortCount = 8;

    // LSR bits.
    public const byte LsrDataReady = 0x01, LsrThrEmpty = 0x20, LsrTransmitterEmpty = 0x40;

    private readonly object _lock = new();
    private readonly Queue<byte> _rx = new();
    private readonly Action<ReadOnlySpan<byte>> _output;
    private readonly ushort _base;
    private byte _ier, _lcr = 0x03, _mcr, _scr, _fcr, _msr = 0xB0; // DCD|DSR|CTS as a connected line
    private ushort _divisor = 12; // 9600 baud
    private bool _thrEmptyInterruptPending = true;

    /// <param name="output">Receives every transmitted byte (the host's stdout); called under the UART's lock, so ordering is preserved.</param>
    public Uart16550(Action<ReadOnlySpan<byte>> output, ushort basePort = Com1)
    {
        _output = output;
        _base = basePort;
    }

    /// <summary>A UART writing to a stream, flushing after each byte so serial output appears as it happens.</summary>
    public static Uart16550 ToStream(Stream stream, ushort basePort = Com1) => new(bytes =>
    {
        stream.Write(bytes);
        stream.Flush();
    }, basePort);

    public ushort BasePort => _base;

    /// <summary>Bytes the guest has transmitted so far.</summary>
    public long BytesTransmitted { get; private set; }

    public ushort Divisor
    {
        get
        {
            lock (_lock)
            {
                return _divisor;
            }
        }
    }

    /// <summary>Queues bytes as if they arrived on the line (the host's stdin).</summary>
    public void Receive(ReadOnlySpan<byte> bytes)
    {
        lock (_lock)
        {
            foreach (var b in bytes)
            {
                _rx.Enqueue(b);
            }
        }
    }

    public uint In(ushort port, int size)
    {
        lock (_lock)
        {
            return ReadRegister(port - _base);
        }
    }

    public void Out(ushort port, int size, uint value)
    {
        lock (_lock)
        {
            WriteRegister(port - _base, (byte)value);
        }
    }

    private bool Dlab => (_lcr & 0x80) != 0;

    private bool Loopback => (_mcr & 0x10) != 0;

    private byte ReadRegister(int offset)
    {
        switch (offset)
        {
            case 0:
                if (Dlab)
                {
                    return (byte)_divisor;
                }

                return _rx.Count > 0 ? _rx.Dequeue() : (byte)0;
            case 1:
                return Dlab ? (byte)(_divisor >> 8) : _ier;
            case 2:
                return ReadIir();
            case 3:
                return _lcr;
            case 4:
                return _mcr;
            case 5:
                return (byte)(LsrThrEmpty | LsrTransmitterEmpty | (_rx.Count > 0 ? LsrDataReady : 0));
            case 6:
                return ReadMsr();
            default:
                return _scr;
        }
    }

    private byte ReadIir()
    {
        // FIFO-enabled bits 7:6 when FCR bit 0 is set (16550A).
        var fifo = (_fcr & 1) != 0 ? 0xC0 : 0;
        byte id;
        if ((_ier & 0x01) != 0 && _rx.Count > 0)
        {
            id = 0x04; // received data available
        }
        else if ((_ier & 0x02) != 0 && _thrEmptyInterruptPending)
        {
            id = 0x02; // THR empty; reading IIR clears it (data sheet table 4)
            _thrEmptyInterruptPending = false;
        }
        else
        {
            id = 0x01; // no interrupt pending
        }

        return (byte)(fifo | id);
    }

    private byte ReadMsr()
    {
        if (Loopback)
        {
            // Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
            var m = _mcr;
            return (byte)(((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4));
        }

        return _msr;
    }

    private void WriteRegister(int offset, byte value)
    {
        switch (offset)
        {
            case 0:
                if (Dlab)
                {
                    _divisor = (ushort)((_divisor & 0xFF00) | value);
                }
                else if (Loopback)
                {
                    _rx.Enqueue(value);
                }
                else
                {
                    _output([value]);
                    BytesTransmitted++;
                    _thrEmptyInterruptPending = true;
                }

                break;
            case 1:
                if (Dlab)
                {
                    _divisor = (ushort)((_divisor & 0x00FF) | (value << 8));
                }
                else
                {
                    // Enabling the THRE interrupt raises it at once when THR is empty (it always is).
                    if ((value & 0x02) != 0 && (_ier & 0x02) == 0)
                    {
                        _thrEmptyInterruptPending = true;
                    }

                    _ier = (byte)(value & 0x0F);
                }

                break;
            case 2:
                _fcr = value;
                if ((value & 0x02) != 0)
                {
                    _rx.Clear(); // receiver FIFO reset
                }

                break;
            case 3:
                _lcr = value;
                break;
            case 4:
                _mcr = (byte)(value & 0x1F);
                break;
            case 5:
            case 6:
                break; // LSR and MSR are read-only (factory test writes ignored)
            default:
                _scr = value;
                break;
        }
    }
}
