using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

public static partial class PlatformGuests
{
    public static byte[] BuildReset(KernelFormat format = KernelFormat.AoutKludge)
    {
        var kit = Start();
        var a = kit.A;
        kit.C.Print("resetting through 0xcf9\n");
        a.mov(dx, 0xCF9);
        a.mov(al, 0x02);
        a.@out(dx, al);
        a.mov(al, 0x06); // hard reset
        a.@out(dx, al);
        kit.C.Print("reset ignored\n");
        kit.C.DebugExit(2);
        return kit.Kernel.Build(format);
    }
}
