using ActorVm.Hardware.Apic;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Devices;
using ActorVm.Hardware.Guests;
using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Tests.Platform;

/// <summary>The platform as Machine.CreatePc attaches it, seen through the machine's own buses.</summary>
public sealed class PcMachineTests
{
    [Fact]
    public void CreatePc_AttachesThePlatform_FwCfgCountsEveryVcpu()
    {
        using var m = Machine.CreatePc(new MachineConfig(VcpuCount: 3, MemoryMiB: 16));
        Assert.NotNull(m.Platform);
        m.Io.Out(FwCfg.SelectorPort, 2, FwCfg.NbCpus);
        Assert.Equal(3u, m.Io.In(FwCfg.DataPort, 1));
        Assert.Equal(0u, m.Io.In(FwCfg.DataPort, 1));
        Assert.True(m.Io.IsClaimed(PcTestDev.ScratchPort));
        Assert.True(m.Io.IsClaimed(0xCF9));
    }

    [Fact]
    public void AcpiPmTimer_CountsAt3579545HzOnTheVmClock()
    {
        var clock = new ManualTscClock(1_000_000_000);
        using var m = Machine.CreatePc(new MachineConfig(MemoryMiB: 16), clock: clock);
        var t0 = m.Io.In(AcpiPmTimer.Port, 4);
        clock.Advance(1_000_000); // 1 ms
        var t1 = m.Io.In(AcpiPmTimer.Port, 4);
        Assert.InRange((t1 - t0) & 0xFFFFFF, 3579u, 3580u);
    }

    [Fact]
    public void IoApicMessages_GoToTheConnectedApicBus_AndAreCountedWithoutOne()
    {
        using var m = Machine.CreatePc(new MachineConfig(MemoryMiB: 16));
        var ioapic = m.Platform!.IoApic;
        void Route(int pin, uint vector)
        {
            ioapic.Write(0x00, 4, (ulong)(0x10 + (2 * pin)));
            ioapic.Write(0x10, 4, vector);
        }

        Route(10, 0x40);
        m.Io.Out((ushort)(PcTestDev.IrqPortBase + 10), 1, 1);
        Assert.Equal(1, m.DroppedInterruptMessages);

        var sent = new List<InterruptMessage>();
        m.ConnectApicBus(sent.Add);
        m.Io.Out((ushort)(PcTestDev.IrqPortBase + 10), 1, 0);
        m.Io.Out((ushort)(PcTestDev.IrqPortBase + 10), 1, 1);
        var msg = Assert.Single(sent);
        Assert.Equal(0x40, msg.Vector);
        Assert.Equal(DeliveryMode.Fixed, msg.Mode);
        Assert.Equal(1, m.DroppedInterruptMessages);
    }

    [Fact]
    public void SynchronousRunner_EndsOnAGuestReset()
    {
        using var m = Machine.CreatePc(new MachineConfig(MemoryMiB: 16));
        MultibootLoader.Load(m, PlatformGuests.BuildReset(), "pc-reset");
        var result = new Runner().Run(m, new RunLimits(MaxInstructions: 1_000_000));
        Assert.Equal(RunOutcome.Reset, result.Outcome);
        Assert.Contains("ResetControlRegister", result.Detail);
        Assert.Equal(ResetSource.ResetControlRegister, m.Platform!.SystemControl.Requested);
    }
}
