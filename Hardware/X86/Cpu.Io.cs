namespace ActorVm.Hardware.X86;

public sealed partial class Cpu
{
    /// <summary>
    /// I/O privilege (SDM vol. 1 19.5): at CPL &gt; IOPL (or in virtual-8086 mode) the access is
    /// allowed only if every bit for its ports in the TSS I/O permission bitmap is clear; a
    /// 16-bit TSS, or a bitmap beyond the TSS limit, denies it with #GP(0).
    /// </summary>
    internal void CheckIoPermission(ushort port, int size)
    {
        if (!ProtectedMode || (Cpl <= Iopl && (Flags & Rflags.VM) == 0))
        {
            return;
        }

        if ((Tr.Type & ~2) != 9 || Tr.Limit < 0x67)
        {
            throw GuestFault.Gp();
        }

        var mapBase = ReadLinear(SystemLinear(Tr.Base + 0x66), 2);
        var first = mapBase + ((ulong)port >> 3);
        // Two bytes are always read (the access may straddle a byte of the bitmap).
        if (first + 1 > Tr.Limit)
        {
            throw GuestFault.Gp();
        }

        var bits = ReadLinear(SystemLinear(Tr.Base + first), 2);
        var mask = ((1UL << size) - 1) << (port & 7);
        if ((bits & mask) != 0)
        {
            throw GuestFault.Gp();
        }
    }
}
