using ActorVm.Hardware.Devices;
using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Tests.Devices;

public sealed class DebugExitTests
{
    [Theory]
    [InlineData(0u, 1)]
    [InlineData(1u, 3)]
    [InlineData(0x31u, 0x63)]
    [InlineData(0x7Fu, 0xFF)]
    [InlineData(0x80u, 1)] // (0x80 << 1) | 1 = 0x101: the OS keeps 8 bits
    public void StatusIsValueShiftedLeftOrOne(uint value, int status)
    {
        var d = new DebugExit();
        int? seen = null;
        d.Requested += s => seen = s;
        Assert.False(d.IsRequested);
        Assert.Null(d.ExitStatus);
        d.Out(DebugExit.DefaultPort, 1, value);
        Assert.True(d.IsRequested);
        Assert.Equal(status, d.ExitStatus);
        Assert.Equal(status, seen);
    }

    [Fact]
    public void FirstWriteWins()
    {
        var d = new DebugExit();
        var events = 0;
        d.Requested += _ => events++;
        d.Out(DebugExit.DefaultPort, 4, 2);
        d.Out(DebugExit.DefaultPort + 2, 1, 9);
        Assert.Equal(5, d.ExitStatus);
        Assert.Equal(1, events);
    }

    [Fact]
    public void CreatePc_WiresCom1AndDebugExitOnTheBus()
    {
        var serial = new List<byte>();
        using var m = Machine.CreatePc(new MachineConfig(1, 4), b => serial.AddRange(b.ToArray()), new ManualTscClock());
        for (ushort p = 0x3F8; p < 0x400; p++)
        {
            Assert.True(m.Io.IsClaimed(p));
        }

        for (ushort p = 0xF4; p < 0xF8; p++)
        {
            Assert.True(m.Io.IsClaimed(p));
        }

        Assert.False(m.Io.IsClaimed(0xF8));
        m.Io.Out(0x3F8, 1, 'Q');
        Assert.Equal("Q"u8.ToArray(), serial);
        Assert.Equal(0x60u, m.Io.In(0x3FD, 1) & 0x60);
        m.Io.Out(0xF4, 4, 3);
        Assert.Equal(7, m.DebugExit!.ExitStatus);
        Assert.Equal(0xFFu, m.Io.In(0xF4, 1));
    }
}
