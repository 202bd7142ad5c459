using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

public static partial class PlatformGuests
{
    public static byte[] BuildIoApic(KernelFormat format = KernelFormat.AoutKludge)
    {
        var kit = Start();
        var a = kit.A;
        const int edgePin = 10, levelPin = 11;
        const int edgeVector = 0x40, levelVector = 0x41, pitVector = 0x48;

        kit.Handler(edgeVector);

        // Level-triggered: the device keeps the line up until its handler tells it to stop; the
        // EOI then reaches the IOAPIC (remote IRR cleared) and, with the line low, nothing repeats.
        kit.Handler(levelVector, x =>
        {
            x.mov(dx, (ushort)(Devices.PcTestDev.IrqPortBase + levelPin));
            x.mov(al, 0);
            x.@out(dx, al);
        });
        kit.Handler(pitVector);
        kit.BuildIdt();
        kit.EnableApic();

        kit.IoApicRoute(edgePin, edgeVector, 0); // fixed, physical, edge, high, unmasked → APIC 0
        kit.SetIrqLine(edgePin, true);
        kit.HaltUntil(PcGuestKit.Counter(0, edgeVector), 1);
        a.sti();
        kit.Delay(100_000); // a line held high is one edge, one interrupt
        a.cli();
        kit.SetIrqLine(edgePin, false);
        kit.CheckEquals("ioapic edge pin once per edge", PcGuestKit.Counter(0, edgeVector), 1);

        kit.IoApicRoute(levelPin, levelVector | (1 << 15), 0); // level-triggered
        kit.SetIrqLine(levelPin, true);
        kit.HaltUntil(PcGuestKit.Counter(0, levelVector), 1);
        kit.Delay(100_000);
        kit.CheckEquals("ioapic level pin until the handler lowers it", PcGuestKit.Counter(0, levelVector), 1);
        a.mov(__dword_ptr[PcGuestKit.IoApicBase], 0x10 + (2 * levelPin));
        a.mov(eax, __dword_ptr[PcGuestKit.IoApicBase + 0x10]);
        kit.Check("ioapic remote irr cleared by eoi", (x, bad) =>
        {
            x.test(eax, 1 << 14);
            x.jnz(bad);
        });

        // Masked pin: an edge while masked is not delivered.
        kit.IoApicRoute(edgePin, edgeVector | (1 << 16), 0);
        kit.SetIrqLine(edgePin, true);
        kit.SetIrqLine(edgePin, false);
        kit.Delay(100_000);
        kit.CheckEquals("ioapic masked pin silent", PcGuestKit.Counter(0, edgeVector), 1);

        // The PIT's IRQ 0 arrives on IOAPIC pin 2 (the MADT's interrupt source override): mode 2,
        // 1193 ticks ≈ 1 ms; take three, then mask.
        kit.IoApicRoute(2, pitVector, 0);
        a.mov(al, 0x34); // channel 0, LSB then MSB, mode 2
        a.@out(0x43, al);
        a.mov(al, 0xA9);
        a.@out(0x40, al);
        a.mov(al, 0x04);
        a.@out(0x40, al);
        kit.HaltUntil(PcGuestKit.Counter(0, pitVector), 3);
        kit.IoApicRoute(2, pitVector | (1 << 16), 0);
        kit.Check("pit irq0 through ioapic pin 2", (x, bad) =>
        {
            x.cmp(__dword_ptr[PcGuestKit.Counter(0, pitVector)], 3);
            x.jb(bad);
        });

        kit.Finish();
        return kit.Kernel.Build(format);
    }
}
