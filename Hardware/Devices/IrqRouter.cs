namespace ActorVm.Hardware.Devices;

/// <summary>
/// The board's interrupt wiring: ISA IRQ n drives 8259 input n and I/O APIC pin n, except
/// IRQ 0 (the PIT), which reaches the I/O APIC on pin 2 as the MADT's interrupt source override
/// says. Lines 16-23 exist only on the I/O APIC.
/// </summary>
public sealed class IrqRouter(Pic8259 pic, IoApic ioApic) : IInterruptSink
{
    public void SetIrq(int line, bool level)
    {
        if (line < 16)
        {
            pic.SetIrq(line, level);
        }

        ioApic.SetIrq(line == 0 ? 2 : line, level);
    }
}
