using ActorVm.Hardware.Apic;
using ActorVm.Hardware.Devices;
using ActorVm.Hardware.Firmware;
using ActorVm.Hardware.Memory;
using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Tests.Platform;

public class PcDevicesTests
{
    private sealed class IrqLog : IInterruptSink
    {
        public List<(int Line, bool Level)> Events { get; } = [];

        public void SetIrq(int line, bool level) => Events.Add((line, level));
    }

    private static IoBus Bus(params Action<IoBus>[] attach)
    {
        var bus = new IoBus();
        foreach (var a in attach)
        {
            a(bus);
        }

        return bus;
    }

    private static ulong ReadItem(IoBus bus, ushort key, int length)
    {
        bus.Out(FwCfg.SelectorPort, 2, key);
        ulong v = 0;
        for (var i = 0; i < length; i++)
        {
            v |= (ulong)bus.In(FwCfg.DataPort, 1) << (8 * i);
        }

        return v;
    }

    [Fact]
    public void FwCfgStreamsSignatureCpuCountAndRamSizeAndZeroesUnknownKeys()
    {
        var fw = new FwCfg(vcpus: 4, ramBytes: 128UL << 20, maxCpus: 8);
        var bus = new IoBus();
        bus.Register(FwCfg.SelectorPort, 2, fw);

        Assert.Equal(0x554D4551UL, ReadItem(bus, FwCfg.Signature, 4)); // "QEMU"
        Assert.Equal(4UL, ReadItem(bus, FwCfg.NbCpus, 2));
        Assert.Equal(8UL, ReadItem(bus, FwCfg.MaxCpus, 2));
        Assert.Equal(128UL << 20, ReadItem(bus, FwCfg.RamSize, 8));
        Assert.Equal(0UL, ReadItem(bus, 0x1234, 4));
        // Re-selecting rewinds; reading past the end yields zeros.
        Assert.Equal(0x0004UL, ReadItem(bus, FwCfg.NbCpus, 4));
    }

    [Fact]
    public void PcTestDevScratchIsByteAddressableAndIrqPortsDriveLines()
    {
        var irqs = new IrqLog();
        var dev = new PcTestDev(irqs);
        using var mem = new GuestMemory(1 << 20);
        var bus = new IoBus();
        dev.Attach(bus, mem);

        bus.Out(PcTestDev.ScratchPort, 4, 0x11223344);
        Assert.Equal(0x11223344u, bus.In(PcTestDev.ScratchPort, 4));
        bus.Out(PcTestDev.ScratchBytePort + 2, 1, 0xAA);
        Assert.Equal(0x11AA3344u, bus.In(PcTestDev.ScratchPort, 4));
        Assert.Equal(0xAAu, bus.In(PcTestDev.ScratchPort + 2, 1));

        bus.Out(PcTestDev.IrqPortBase + 10, 1, 1);
        bus.Out(PcTestDev.IrqPortBase + 10, 1, 0);
        Assert.Equal([(10, true), (10, false)], irqs.Events);

        var region = mem.FindRegion(PcTestDev.IomemBase + 8)!;
        region.Device.Write(8, 8, 0x0102030405060708);
        Assert.Equal(0x0506UL, region.Device.Read(10, 2));
    }

    [Fact]
    public void ResetPathsRaiseResetRequested()
    {
        var sys = new SystemControl();
        var bus = Bus(sys.Attach);
        var seen = new List<ResetSource>();
        sys.ResetRequested += seen.Add;

        Assert.Equal(0x02u, bus.In(SystemControl.Port92, 1) & 0x02); // A20 on
        bus.Out(SystemControl.ResetControl, 1, 0x02); // select hard reset, no action yet
        Assert.Empty(seen);
        bus.Out(SystemControl.ResetControl, 1, 0x06);
        bus.Out(SystemControl.KbdCommand, 1, 0xFE);
        bus.Out(SystemControl.Port92, 1, 0x03);
        foreach (var c in "Shutdown")
        {
            bus.Out(SystemControl.BochsShutdown, 1, c);
        }

        Assert.Equal([ResetSource.ResetControlRegister, ResetSource.KeyboardController, ResetSource.Port92FastReset, ResetSource.BochsShutdownPort], seen);
    }

    [Fact]
    public void PciConfigSpaceAnswersNoDevice()
    {
        var pci = new PciHost();
        var bus = Bus(pci.Attach);
        bus.Out(PciHost.AddressPort, 4, 0x80000000);
        Assert.Equal(0x80000000u, bus.In(PciHost.AddressPort, 4));
        Assert.Equal(0xFFFFu, bus.In(PciHost.DataPort, 2));
        Assert.Equal(0xFFFFFFFFu, bus.In(PciHost.DataPort, 4));
    }

    [Fact]
    public void CmosHoldsQemuMemorySizeBytesAndBcdTime()
    {
        var rtc = new CmosRtc(128UL << 20, vcpus: 2, now: () => new DateTime(2026, 11, 25, 13, 45, 59, DateTimeKind.Utc));
        var bus = Bus(rtc.Attach);
        uint Cmos(byte i)
        {
            bus.Out(CmosRtc.IndexPort, 1, i);
            return bus.In(CmosRtc.DataPort, 1);
        }

        // 128 MiB: 127 MiB of extended memory = 130048 KiB, capped at 0xFFFF; above 16 MiB: 112 MiB / 64 KiB = 1792.
        Assert.Equal(0xFFFFu, Cmos(0x30) | (Cmos(0x31) << 8));
        Assert.Equal(1792u, Cmos(0x34) | (Cmos(0x35) << 8));
        Assert.Equal(640u, Cmos(0x15) | (Cmos(0x16) << 8));
        Assert.Equal(0x59u, Cmos(0x00));
        Assert.Equal(0x45u, Cmos(0x02));
        Assert.Equal(0x13u, Cmos(0x04));
        Assert.Equal(0x26u, Cmos(0x09));
        bus.Out(CmosRtc.IndexPort, 1, 0x8F);
        Assert.True(rtc.NmiMasked);
    }

    [Fact]
    public void PitCountsDownOnTheVmClockAndLatchesAndReportsStatus()
    {
        var clock = new ManualTscClock(Pit8254.Frequency); // one TSC tick per PIT tick
        var pit = new Pit8254(clock);
        var bus = Bus(pit.Attach);

        bus.Out(Pit8254.Control, 1, 0x34); // counter 0, LSB/MSB, mode 2
        bus.Out(Pit8254.Counter0, 1, 0x00);
        bus.Out(Pit8254.Counter0, 1, 0x10); // 0x1000
        clock.Advance(0x100);
        bus.Out(Pit8254.Control, 1, 0x00); // latch counter 0
        clock.Advance(0x50); // the latched value does not move
        var lo = bus.In(Pit8254.Counter0, 1);
        var hi = bus.In(Pit8254.Counter0, 1);
        Assert.Equal(0x1000u - 0x100u, lo | (hi << 8));

        bus.Out(Pit8254.Control, 1, 0xE2); // read-back: status only, counter 0
        Assert.Equal(0x34u, bus.In(Pit8254.Counter0, 1) & 0x3F);

        // Counter 2 in mode 0 through the speaker gate: OUT2 (port 0x61 bit 5) rises at terminal count.
        bus.Out(Pit8254.SpeakerPort, 1, 0x01);
        bus.Out(Pit8254.Control, 1, 0xB0);
        bus.Out(Pit8254.Counter0 + 2, 1, 100);
        bus.Out(Pit8254.Counter0 + 2, 1, 0);
        clock.Advance(99);
        Assert.Equal(0u, bus.In(Pit8254.SpeakerPort, 1) & 0x20);
        clock.Advance(1);
        Assert.Equal(0x20u, bus.In(Pit8254.SpeakerPort, 1) & 0x20);
    }

    [Fact]
    public void PitCounterZeroRaisesIrqZeroOncePerPeriod()
    {
        var clock = new ManualTscClock(Pit8254.Frequency);
        var irqs = new IrqLog();
        var pit = new Pit8254(clock, irqs);
        var bus = Bus(pit.Attach);
        bus.Out(Pit8254.Control, 1, 0x34);
        bus.Out(Pit8254.Counter0, 1, 100);
        bus.Out(Pit8254.Counter0, 1, 0);
        Assert.Equal(100UL, pit.NextIrqTsc);
        clock.Advance(100);
        pit.Poll();
        pit.Poll();
        Assert.Equal([(0, true), (0, false)], irqs.Events);
        Assert.Equal(200UL, pit.NextIrqTsc);
    }

    [Fact]
    public void PicInitialisedMasksAcknowledgesAndEnds()
    {
        var pic = new Pic8259();
        var bus = Bus(pic.Attach);
        var intr = new List<bool>();
        pic.IntrChanged += intr.Add;
        // ICW1-4 for master (vectors 0x20) and slave (0x28), then mask all but IRQ 1 and IRQ 2 (cascade) and IRQ 9.
        bus.Out(0x20, 1, 0x11); bus.Out(0x21, 1, 0x20); bus.Out(0x21, 1, 0x04); bus.Out(0x21, 1, 0x01);
        bus.Out(0xA0, 1, 0x11); bus.Out(0xA1, 1, 0x28); bus.Out(0xA1, 1, 0x02); bus.Out(0xA1, 1, 0x01);
        bus.Out(0x21, 1, 0xF9);
        bus.Out(0xA1, 1, 0xFD);

        pic.SetIrq(3, true); // masked
        Assert.Empty(intr);
        pic.SetIrq(9, true);
        Assert.Equal([true], intr);
        Assert.Equal(0x29, pic.Acknowledge());
        bus.Out(0xA0, 1, 0x0B); // read ISR
        Assert.Equal(0x02u, bus.In(0xA0, 1));
        bus.Out(0xA0, 1, 0x20); // EOI slave
        bus.Out(0x20, 1, 0x20); // EOI master
        bus.Out(0xA0, 1, 0x0B);
        Assert.Equal(0u, bus.In(0xA0, 1));
    }

    [Fact]
    public void IoApicDeliversEdgeOnceAndLevelAgainAfterEoiWhileAsserted()
    {
        var sent = new List<InterruptMessage>();
        var io = new IoApic(sent.Add);
        void Select(uint reg, uint value)
        {
            io.Write(0x00, 4, reg);
            io.Write(0x10, 4, value);
        }

        io.Write(0x00, 4, 0x01);
        Assert.Equal(0x170011UL, io.Read(0x10, 4));

        io.SetIrq(4, true); // masked at reset
        Assert.Empty(sent);
        Select(0x10 + 8, 0x31); // pin 4: vector 0x31, fixed, physical, edge, unmasked
        Select(0x10 + 9, 0x01000000); // destination APIC 1
        io.SetIrq(4, false);
        io.SetIrq(4, true);
        io.SetIrq(4, true); // no new edge
        Assert.Single(sent);
        Assert.Equal((byte)0x31, sent[0].Vector);
        Assert.Equal(1u, sent[0].Destination);

        Select(0x10 + 10, 0x8042); // pin 5: vector 0x42, level
        io.SetIrq(5, true);
        io.SetIrq(5, true);
        Assert.Equal(2, sent.Count);
        io.Write(0x00, 4, 0x10 + 10);
        Assert.NotEqual(0UL, io.Read(0x10, 4) & (1 << 14)); // remote IRR
        io.EndOfInterrupt(0x42);
        Assert.Equal(3, sent.Count); // still asserted: delivered again
        io.SetIrq(5, false);
        io.EndOfInterrupt(0x42);
        Assert.Equal(3, sent.Count);
    }

    [Fact]
    public void AcpiTablesAreFoundByTheirSignaturesAndChecksum()
    {
        using var mem = new GuestMemory(4 << 20);
        AcpiTables.Install(mem, vcpus: 300);

        var rsdp = mem.ReadBytes(AcpiTables.RsdpAddress, 36);
        Assert.Equal("RSD PTR ", System.Text.Encoding.ASCII.GetString(rsdp, 0, 8));
        Assert.Equal(0, AcpiTables.Checksum(rsdp.AsSpan(0, 20)));
        Assert.Equal(0, AcpiTables.Checksum(rsdp));
        var rsdt = mem.Read32(AcpiTables.RsdpAddress + 16);
        var rsdtLength = (int)mem.Read32(rsdt + 4);
        Assert.Equal(0, AcpiTables.Checksum(mem.ReadBytes(rsdt, rsdtLength)));

        var madtLength = (int)mem.Read32(AcpiTables.MadtAddress + 4);
        var madt = mem.ReadBytes(AcpiTables.MadtAddress, madtLength);
        Assert.Equal("APIC", System.Text.Encoding.ASCII.GetString(madt, 0, 4));
        Assert.Equal(0, AcpiTables.Checksum(madt));
        int lapics = 0, x2apics = 0, ioapics = 0;
        for (var at = 44; at < madt.Length; at += madt[at + 1])
        {
            switch (madt[at])
            {
                case 0: lapics++; break;
                case 9: x2apics++; break;
                case 1: ioapics++; break;
            }
        }

        Assert.Equal((255, 45, 1), (lapics, x2apics, ioapics));
    }

    [Fact]
    public void ThePlatformRoutesPitIrqZeroToIoApicPinTwoAndAnswersOnTheBus()
    {
        var sent = new List<InterruptMessage>();
        using var machine = new Machine(new MachineConfig(VcpuCount: 2, MemoryMiB: 16), new ManualTscClock(Pit8254.Frequency));
        var pc = new PcPlatform(machine, sent.Add, maxCpus: 2);

        // Pin 2: vector 0x30, unmasked, to APIC 0.
        pc.IoApic.Write(0x00, 4, 0x14);
        pc.IoApic.Write(0x10, 4, 0x30);
        pc.Irqs.SetIrq(0, true);
        Assert.Equal((byte)0x30, Assert.Single(sent).Vector);
        Assert.Equal(1, pc.IoApic.Delivered[2]);

        Assert.Equal(2UL, ReadItem(machine.Io, FwCfg.NbCpus, 2));
        Assert.Equal(0xFFFFFFFFu, machine.Io.In(PciHost.DataPort, 4));
    }
}
