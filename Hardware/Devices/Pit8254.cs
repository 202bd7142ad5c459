using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Devices;

/// <summary>
/// The 8254 programmable interval timer (Intel 8254 datasheet): three 16-bit counters at
/// 1.193182 MHz behind ports 0x40-0x42, the control word at 0x43 (counter latch and read-back
/// included), and the gate/speaker bits of port 0x61 for counter 2. Counting follows the VM's
/// TSC clock. Counter 0's output edges (IRQ 0) are produced by <see cref="Poll"/>, which the VM's
/// device timer calls at <see cref="NextIrqTsc"/>.
/// </summary>
public sealed class Pit8254 : IIoDevice
{
    public const ulong Frequency = 1_193_182;
    public const ushort Counter0 = 0x40, Control = 0x43, SpeakerPort = 0x61;

    private readonly ITscClock _clock;
    private readonly IInterruptSink? _irq;
    private readonly Counter[] _counters = [new(), new(), new()];
    private readonly object _lock = new();
    private byte _port61;
    private ulong _irqEdges;
    private bool _counter0Loaded;

    public Pit8254(ITscClock clock, IInterruptSink? irq = null)
    {
        _clock = clock;
        _irq = irq;
        _counters[0].Gate = _counters[1].Gate = true;
    }

    public void Attach(IoBus bus)
    {
        bus.Register(Counter0, 4, this);
        bus.Register(SpeakerPort, 1, this);
    }

    private sealed class Counter
    {
        public int Mode;
        public int Access = 3; // 1 LSB, 2 MSB, 3 LSB then MSB
        public bool Bcd;
        public uint Initial = 0x10000;
        public ulong StartTick;
        public bool Gate;
        public bool Armed;
        public bool WriteMsbNext;
        public bool ReadMsbNext;
        public int? Latched;
        public byte? LatchedStatus;
        public byte WriteLsb;
        public ulong FrozenElapsed;
    }

    private ulong NowTicks() => (ulong)((UInt128)_clock.ReadTsc() * Frequency / _clock.Frequency);

    private ulong Elapsed(Counter c, ulong now) => !c.Armed ? 0 : c.Gate || c.Mode is 1 or 5 ? now - c.StartTick : c.FrozenElapsed;

    private static int CountAt(Counter c, ulong elapsed)
    {
        var n = c.Initial;
        return c.Mode switch
        {
            2 => (int)(n - (elapsed % n)),
            3 => (int)((n - (2 * (elapsed % ((n + 1) / 2)))) & 0xFFFF),
            _ => (int)((n - elapsed) & 0xFFFF),
        };
    }

    private static bool OutAt(Counter c, ulong elapsed) => c.Mode switch
    {
        0 or 4 => elapsed >= c.Initial,
        1 or 5 => elapsed >= c.Initial || elapsed == 0,
        2 => elapsed % c.Initial != c.Initial - 1,
        3 => elapsed % c.Initial < (c.Initial + 1) / 2,
        _ => true,
    };

    public uint In(ushort port, int size)
    {
        lock (_lock)
        {
            var now = NowTicks();
            if (port == SpeakerPort)
            {
                var c2 = _counters[2];
                var out2 = c2.Armed && OutAt(c2, Elapsed(c2, now));
                // Bit 4 toggles with the DRAM refresh cycle (~15 µs); bit 5 is counter 2's output.
                var refresh = (now / 18) % 2 == 1;
                return (uint)(_port61 & 0x0F) | (refresh ? 0x10u : 0) | (out2 ? 0x20u : 0);
            }

            if (port == Control)
            {
                return 0xFF;
            }

            var c = _counters[port - Counter0];
            if (c.LatchedStatus is { } status)
            {
                c.LatchedStatus = null;
                return status;
            }

            var value = c.Latched ?? CountAt(c, Elapsed(c, now));
            byte result;
            if (c.Access == 1 || (c.Access == 3 && !c.ReadMsbNext))
            {
                result = (byte)value;
                if (c.Access == 3)
                {
                    c.ReadMsbNext = true;
                    return result;
                }
            }
            else
            {
                result = (byte)(value >> 8);
                c.ReadMsbNext = false;
            }

            c.Latched = null;
            return result;
        }
    }

    public void Out(ushort port, int size, uint value)
    {
        OutLocked(port, value);
        if (Interlocked.Exchange(ref _counter0Loaded, false))
        {
            Counter0Loaded?.Invoke();
        }
    }

    private void OutLocked(ushort port, uint value)
    {
        lock (_lock)
        {
            var now = NowTicks();
            if (port == SpeakerPort)
            {
                var c2 = _counters[2];
                var gate = (value & 1) != 0;
                if (gate && !c2.Gate && c2.Mode is 1 or 2 or 3 or 5)
                {
                    c2.StartTick = now; // rising gate edge retriggers
                }
                else if (!gate && c2.Gate)
                {
                    c2.FrozenElapsed = Elapsed(c2, now);
                }
                else if (gate && !c2.Gate)
                {
                    c2.StartTick = now - c2.FrozenElapsed;
                }

                c2.Gate = gate;
                _port61 = (byte)(value & 0x0F);
                return;
            }

            if (port == Control)
            {
                WriteControl((byte)value, now);
                return;
            }

            var c = _counters[port - Counter0];
            switch (c.Access)
            {
                case 1:
                    Load(c, (byte)value, now);
                    break;
                case 2:
                    Load(c, (uint)(byte)value << 8, now);
                    break;
                default:
                    if (!c.WriteMsbNext)
                    {
                        c.WriteLsb = (byte)value;
                        c.WriteMsbNext = true;
                    }
                    else
                    {
                        c.WriteMsbNext = false;
                        Load(c, c.WriteLsb | ((uint)(byte)value << 8), now);
                    }

                    break;
            }
        }
    }

    private void WriteControl(byte cw, ulong now)
    {
        var select = cw >> 6;
        if (select == 3)
        {
            // Read-back (datasheet "Read-Back Command"): bit 5 clear latches counts, bit 4 clear latches status.
            for (var i = 0; i < 3; i++)
            {
                if ((cw & (2 << i)) == 0)
                {
                    continue;
                }

                var c = _counters[i];
                if ((cw & 0x20) == 0)
                {
                    c.Latched ??= CountAt(c, Elapsed(c, now));
                }

                if ((cw & 0x10) == 0)
                {
                    var outBit = c.Armed && OutAt(c, Elapsed(c, now));
                    c.LatchedStatus = (byte)((outBit ? 0x80 : 0) | (c.Armed ? 0 : 0x40) | (c.Access << 4) | (c.Mode << 1) | (c.Bcd ? 1 : 0));
                }
            }

            return;
        }

        var counter = _counters[select];
        var access = (cw >> 4) & 3;
        if (access == 0)
        {
            counter.Latched ??= CountAt(counter, Elapsed(counter, now));
            return;
        }

        counter.Access = access;
        counter.Mode = (cw >> 1) & 7;
        if (counter.Mode > 5)
        {
            counter.Mode -= 4; // modes 6 and 7 alias 2 and 3
        }

        counter.Bcd = (cw & 1) != 0;
        counter.Armed = false;
        counter.WriteMsbNext = counter.ReadMsbNext = false;
        counter.Latched = null;
    }

    private void Load(Counter c, uint count, ulong now)
    {
        c.Initial = count == 0 ? 0x10000u : count;
        c.StartTick = now;
        c.FrozenElapsed = 0;
        c.Armed = true;
        if (c == _counters[0])
        {
            _irqEdges = 0;
            _counter0Loaded = true;
        }
    }

    /// <summary>
    /// Raised (outside the lock, on the programming vCPU's thread) when counter 0 gets a new
    /// count: the VM's device timer re-reads <see cref="NextIrqTsc"/>, as KVM's create_pit_timer
    /// re-arms the PIT hrtimer on every counter-0 load.
    /// </summary>
    public event Action? Counter0Loaded;

    /// <summary>Guest TSC of counter 0's next rising output edge (IRQ 0), or ulong.MaxValue.</summary>
    public ulong NextIrqTsc
    {
        get
        {
            lock (_lock)
            {
                var c = _counters[0];
                if (!c.Armed || _irq is null || (c.Mode is 0 or 4 && _irqEdges > 0))
                {
                    return ulong.MaxValue;
                }

                var tick = c.StartTick + (c.Initial * (_irqEdges + 1));
                return (ulong)((UInt128)tick * _clock.Frequency / Frequency);
            }
        }
    }

    /// <summary>Raises IRQ 0 for every counter-0 edge up to now (edges while the guest was slow coalesce into one).</summary>
    public void Poll()
    {
        var raise = false;
        lock (_lock)
        {
            var c = _counters[0];
            if (c.Armed && _irq is not null)
            {
                var edges = (NowTicks() - c.StartTick) / c.Initial;
                if (c.Mode is 0 or 4)
                {
                    edges = Math.Min(edges, 1);
                }

                if (edges > _irqEdges)
                {
                    _irqEdges = edges;
                    raise = true;
                }
            }
        }

        if (raise)
        {
            _irq!.SetIrq(0, true);
            _irq.SetIrq(0, false);
        }
    }
}
