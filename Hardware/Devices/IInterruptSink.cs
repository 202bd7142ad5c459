namespace ActorVm.Hardware.Devices;

/// <summary>
/// Where a device's interrupt line goes: the board's IRQ routing (PIC and IOAPIC pins).
/// <paramref name="line"/> is an ISA IRQ / GSI number; level-triggered devices call it with
/// true while they assert the line and false when they drop it.
/// </summary>
public interface IInterruptSink
{
    void SetIrq(int line, bool level);
}
