using ActorVm.Hardware.Apic;
using ActorVm.Hardware.Firmware;

namespace ActorVm.Hardware.Devices;

/// <summary>
/// The QEMU "pc"-compatible devices kvm-unit-tests-style kernels expect, attached to a machine:
/// fw_cfg, the PIC pair, the PIT, CMOS/RTC, the reset paths, PCI with no devices, the ACPI PM
/// timer and tables, the I/O APIC and pc-testdev, with their interrupt lines routed. The I/O
/// APIC's messages go to <paramref name="apicBus"/> (the VM's APIC bus).
/// </summary>
public sealed class PcPlatform
{
    public PcPlatform(Machine machine, Action<InterruptMessage> apicBus, int maxCpus)
    {
        IoApic = new IoApic(apicBus);
        Pic = new Pic8259();
        Irqs = new IrqRouter(Pic, IoApic);
        Pit = new Pit8254(machine.Clock, Irqs);
        FwCfg = new FwCfg(machine.Cpus.Count, machine.Memory.RamSize, maxCpus);
        Cmos = new CmosRtc(machine.Memory.RamSize, machine.Cpus.Count);
        SystemControl = new SystemControl();
        Pci = new PciHost();
        PmTimer = new AcpiPmTimer(machine.Clock);
        // QEMU's flush-page re-mprotects host memory behind a guest page; our RAM has no host-side
        // protection to reset, so the command is accepted and has nothing to do.
        TestDev = new PcTestDev(Irqs);

        var bus = machine.Io;
        bus.Register(FwCfg.SelectorPort, 2, FwCfg);
        Pic.Attach(bus);
        Pit.Attach(bus);
        Cmos.Attach(bus);
        SystemControl.Attach(bus);
        Pci.Attach(bus);
        PmTimer.Attach(bus);
        TestDev.Attach(bus, machine.Memory);
        IoApic.Attach(machine.Memory);
        AcpiTables.Install(machine.Memory, machine.Cpus.Count);
    }

    public IoApic IoApic { get; }
    public Pic8259 Pic { get; }
    public IrqRouter Irqs { get; }
    public Pit8254 Pit { get; }
    public FwCfg FwCfg { get; }
    public CmosRtc Cmos { get; }
    public SystemControl SystemControl { get; }
    public PciHost Pci { get; }
    public AcpiPmTimer PmTimer { get; }
    public PcTestDev TestDev { get; }
}
