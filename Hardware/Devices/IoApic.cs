using ActorVm.Hardware.Apic;
using ActorVm.Hardware.Memory;

namespace ActorVm.Hardware.Devices;

/// <summary>
/// The 82093AA I/O APIC at 0xFEC00000 (IOREGSEL at +0x00, IOWIN at +0x10) with 24 pins, version
/// 0x11 as KVM's, redirection entries with edge/level triggering and remote IRR. A pin that
/// fires becomes an <see cref="InterruptMessage"/> on the APIC bus (<paramref name="send"/>); a
/// level-triggered vector's EOI from a local APIC (<see cref="EndOfInterrupt"/>) clears remote
/// IRR and re-delivers while the line stays asserted (KVM ioapic.c behaviour).
/// </summary>
public sealed class IoApic(Action<InterruptMessage> send) : IMmioDevice, IInterruptSink
{
    public const ulong DefaultBase = 0xFEC00000;
    public const int Pins = 24;

    private const ulong Masked = 1UL << 16, Level = 1UL << 15, RemoteIrr = 1UL << 14, Logical = 1UL << 11;

    private readonly ulong[] _redirection = Enumerable.Repeat(Masked, Pins).ToArray();
    private readonly bool[] _lines = new bool[Pins];
    private readonly object _lock = new();
    private uint _select;
    private uint _id;

    /// <summary>Interrupts delivered per pin, for statistics and tests.</summary>
    public long[] Delivered { get; } = new long[Pins];

    public void Attach(GuestMemory memory) => memory.AddRegion(new MmioRegion(DefaultBase, 0x1000, this, "ioapic"));

    public ulong Read(ulong offset, int size)
    {
        lock (_lock)
        {
            return offset switch
            {
                0x00 => _select,
                0x10 => ReadRegister(_select),
                _ => 0,
            };
        }
    }

    public void Write(ulong offset, int size, ulong value)
    {
        var toSend = new List<InterruptMessage>(1);
        lock (_lock)
        {
            if (offset == 0x00)
            {
                _select = (uint)value & 0xFF;
            }
            else if (offset == 0x10)
            {
                WriteRegister(_select, (uint)value, toSend);
            }
        }

        toSend.ForEach(send);
    }

    private uint ReadRegister(uint index) => index switch
    {
        0x00 => _id,
        0x01 => 0x11 | ((uint)(Pins - 1) << 16),
        0x02 => _id,
        >= 0x10 and < 0x10 + (2 * Pins) => (index & 1) == 0
            ? (uint)_redirection[(index - 0x10) / 2]
            : (uint)(_redirection[(index - 0x10) / 2] >> 32),
        _ => 0xFFFFFFFF,
    };

    private void WriteRegister(uint index, uint value, List<InterruptMessage> toSend)
    {
        if (index == 0x00)
        {
            _id = value & 0x0F000000;
            return;
        }

        if (index is < 0x10 or >= 0x10 + (2 * Pins))
        {
            return;
        }

        var pin = (int)(index - 0x10) / 2;
        ref var entry = ref _redirection[pin];
        if ((index & 1) == 0)
        {
            // Delivery status (bit 12) and remote IRR (bit 14) are read-only.
            const ulong readOnly = (1UL << 12) | RemoteIrr;
            entry = (entry & (0xFFFFFFFF00000000 | readOnly)) | (value & ~(uint)readOnly);
        }
        else
        {
            entry = (entry & 0xFFFFFFFF) | ((ulong)value << 32);
        }

        // Unmasking a level-triggered pin whose line is asserted delivers it (KVM ioapic_write_indirect).
        if (_lines[pin] && (entry & Level) != 0)
        {
            Service(pin, toSend);
        }
    }

    /// <summary>Drives pin <paramref name="line"/> (a GSI).</summary>
    public void SetIrq(int line, bool level)
    {
        if (line is < 0 or >= Pins)
        {
            return;
        }

        var toSend = new List<InterruptMessage>(1);
        lock (_lock)
        {
            var old = _lines[line];
            _lines[line] = level;
            var entry = _redirection[line];
            if ((entry & Level) != 0 ? level : level && !old)
            {
                Service(line, toSend);
            }
        }

        toSend.ForEach(send);
    }

    /// <summary>A local APIC's EOI of a level-triggered <paramref name="vector"/>.</summary>
    public void EndOfInterrupt(byte vector)
    {
        var toSend = new List<InterruptMessage>(1);
        lock (_lock)
        {
            for (var pin = 0; pin < Pins; pin++)
            {
                ref var entry = ref _redirection[pin];
                if ((byte)entry == vector && (entry & RemoteIrr) != 0)
                {
                    entry &= ~RemoteIrr;
                    if (_lines[pin] && (entry & Level) != 0)
                    {
                        Service(pin, toSend);
                    }
                }
            }
        }

        toSend.ForEach(send);
    }

    private void Service(int pin, List<InterruptMessage> toSend)
    {
        ref var entry = ref _redirection[pin];
        if ((entry & Masked) != 0 || ((entry & Level) != 0 && (entry & RemoteIrr) != 0))
        {
            return;
        }

        if ((entry & Level) != 0)
        {
            entry |= RemoteIrr;
        }

        Delivered[pin]++;
        toSend.Add(new InterruptMessage(
            Vector: (byte)entry,
            Mode: (DeliveryMode)((entry >> 8) & 7),
            Logical: (entry & Logical) != 0,
            Level: (entry & Level) != 0,
            Assert: true,
            Shorthand: Shorthand.None,
            Destination: (uint)(entry >> 56),
            SourceVcpu: -1,
            X2ApicFormat: false));
    }
}
