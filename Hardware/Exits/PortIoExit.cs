using ActorVm.Hardware.X86;
using ActorVm.Hardware.Devices;

namespace ActorVm.Hardware.Exits;

/// <summary>
/// Handles IO_INSTRUCTION (30) against the port bus and completes the instruction (KVM's
/// handle_io → kernel_pio/emulator_pio_in_out). Returns the next exit if completing the
/// instruction ran into one (a REP string instruction exits once per element).
/// </summary>
public static class PortIoExit
{
    public static VmExit? Handle(Cpu cpu, IoBus bus, in VmExit exit)
    {
        var size = (int)(exit.Qualification & 7) + 1;
        if (exit.IoIn)
        {
            return cpu.Complete(bus.In(exit.Port, size));
        }

        bus.Out(exit.Port, size, (uint)exit.Value);
        return cpu.Complete();
    }
}
