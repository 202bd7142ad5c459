namespace ActorVm.Hardware.X86;

public sealed partial class Cpu
{
    /// <summary>
    /// I/O privilege (SDM vol. 1 18.5): at CPL > IOPL the TSS I/O bitmap is consulted; we do
    /// not model the bitmap, so such an access raises #GP as if every port were denied.
    /// </summary>
    internal void CheckIoPermission(ushort port, int size)
    {
        if (ProtectedMode && Cpl > Iopl)
        {
            throw GuestFault.Gp();
        }
    }
}
