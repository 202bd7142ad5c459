namespace ActorVm.Hardware.Devices;

/// <summary>
/// A device on the x86 I/O port bus. Calls arrive on whichever thread handles the IO exit, so a
/// device reachable from several vCPUs serialises itself.
/// </summary>
public interface IIoDevice
{
    uint In(ushort port, int size);

    void Out(ushort port, int size, uint value);
}
