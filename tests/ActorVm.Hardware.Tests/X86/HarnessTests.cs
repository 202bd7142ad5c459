using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

public class HarnessTests
{
    [Theory]
    [InlineData(16)]
    [InlineData(32)]
    [InlineData(64)]
    public void AddThenOutThenHltReachesTheBusAndStopsAtHlt(int bitness)
    {
        using var h = CpuHarness.Create(bitness);
        var seen = new List<uint>();
        h.Machine.Io.Register(0x80, 1, new RecordingPort(seen));
        h.Load(a =>
        {
            a.mov(al, 40);
            a.add(al, 2);
            a.@out(0x80, al);
            a.hlt();
        });

        var exit = h.Run();

        Assert.Equal(ExitReason.Hlt, exit.Reason);
        Assert.Equal([42u], seen);
        Assert.Equal(CpuHarness.CodeBase + (ulong)h.Assemble(a => { a.mov(al, 40); a.add(al, 2); a.@out(0x80, al); }).Length, h.Cpu.Rip);
    }

    private sealed class RecordingPort(List<uint> seen) : ActorVm.Hardware.Devices.IIoDevice
    {
        public uint In(ushort port, int size) => 0;

        public void Out(ushort port, int size, uint value) => seen.Add(value);
    }
}
