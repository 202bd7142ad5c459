using ActorVm.Hardware.Devices;

namespace ActorVm.Hardware.Tests.Devices;

public sealed class Uart16550Tests
{
    private readonly List<byte> _out = [];
    private readonly Uart16550 _uart;

    public Uart16550Tests()
    {
        _uart = new Uart16550(b =>
        {
            lock (_out)
            {
                _out.AddRange(b.ToArray());
            }
        });
    }

    private uint In(int offset) => _uart.In((ushort)(Uart16550.Com1 + offset), 1);

    private void Out(int offset, uint value) => _uart.Out((ushort)(Uart16550.Com1 + offset), 1, value);

    [Fact]
    public void ThrWrites_GoToOutput_AndLsrShowsTransmitterEmpty()
    {
        Assert.Equal(0x60u, In(5) & 0x61);
        Out(0, (byte)'h');
        Out(0, (byte)'i');
        Assert.Equal("hi"u8.ToArray(), _out);
        Assert.Equal(0x60u, In(5) & 0x61);
        Assert.Equal(2, _uart.BytesTransmitted);
    }

    [Fact]
    public void Dlab_SelectsTheDivisorLatch()
    {
        Out(1, 0x05); // IER
        Out(3, 0x83); // DLAB=1, 8N1
        Out(0, 0x01);
        Out(1, 0x00);
        Assert.Equal(1u, In(0));
        Assert.Equal(0u, In(1));
        Assert.Empty(_out); // divisor writes are not data
        Out(3, 0x03);
        Assert.Equal(0x05u, In(1)); // IER back
        Assert.Equal(0x03u, In(3));
        Assert.Equal((ushort)1, _uart.Divisor);
    }

    [Fact]
    public void Receive_SetsDataReady_UntilRbrIsRead()
    {
        _uart.Receive("ab"u8);
        Assert.Equal(1u, In(5) & 1);
        Assert.Equal((uint)'a', In(0));
        Assert.Equal((uint)'b', In(0));
        Assert.Equal(0u, In(5) & 1);
    }

    [Fact]
    public void Scratch_HoldsItsValue() 
    {
        Out(7, 0xA5);
        Assert.Equal(0xA5u, In(7));
    }

    [Fact]
    public void Iir_ReportsNoInterrupt_ThenFifoBits_ThenEnabledSources()
    {
        Assert.Equal(0x01u, In(2));
        Out(2, 0x07); // FCR: enable and reset FIFOs
        Assert.Equal(0xC1u, In(2));
        Out(1, 0x01); // receive-data interrupt
        _uart.Receive([0x41]);
        Assert.Equal(0xC4u, In(2));
        In(0);
        Assert.Equal(0xC1u, In(2));
        Out(1, 0x02); // THRE interrupt: pending at once, cleared by reading IIR
        Assert.Equal(0xC2u, In(2));
        Assert.Equal(0xC1u, In(2));
    }

    [Fact]
    public void Loopback_ReturnsTransmittedBytes_AndMirrorsModemControl()
    {
        Out(4, 0x10 | 0x0B); // loopback, DTR, RTS, OUT2
        Out(0, 0x5A);
        Assert.Empty(_out);
        Assert.Equal(1u, In(5) & 1);
        Assert.Equal(0x5Au, In(0));
        Assert.Equal(0xB0u, In(6) & 0xF0); // DCD (OUT2), DSR (DTR), CTS (RTS)
    }

    [Fact]
    public void ConcurrentWriters_LoseNoBytes()
    {
        Parallel.For(0, 4, t =>
        {
            for (var i = 0; i < 1000; i++)
            {
                Out(0, (uint)('a' + t));
                _ = In(5);
            }
        });
        Assert.Equal(4000, _out.Count);
        for (var t = 0; t < 4; t++)
        {
            Assert.Equal(1000, _out.Count(b => b == 'a' + t));
        }
    }

    [Fact]
    public void ToStream_FlushesEachByte()
    {
        var stream = new MemoryStream();
        var uart = Uart16550.ToStream(stream);
        uart.Out(Uart16550.Com1, 1, (byte)'x');
        Assert.Equal("x"u8.ToArray(), stream.ToArray());
    }
}
