using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Devices;

/// <summary>
/// The ACPI power-management timer (ACPI spec 4.8.3.3): a free-running 24-bit counter at
/// 3.579545 MHz read as a dword from the port the FADT names (PM_TMR_BLK). Driven by the VM's
/// TSC clock so it agrees with the guest's other notion of time.
/// </summary>
public sealed class AcpiPmTimer(ITscClock clock) : IIoDevice
{
    public const ushort Port = 0x608;
    public const ulong Frequency = 3_579_545;

    public void Attach(IoBus bus) => bus.Register(Port, 4, this);

    public uint In(ushort port, int size)
    {
        var ticks = (ulong)((UInt128)clock.ReadTsc() * Frequency / clock.Frequency);
        return (uint)(ticks & 0xFFFFFF) >> ((port - Port) * 8);
    }

    public void Out(ushort port, int size, uint value)
    {
    }
}
