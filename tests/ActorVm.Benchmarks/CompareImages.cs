using ActorVm.Hardware.Guests;

namespace ActorVm.Benchmarks;

/// <summary>
/// The guest images bench/compare.sh boots on each emulator, one pair per loop of
/// <see cref="BenchGuests"/> (integer, memory, branchy, callret), built from the same loop emitter:
/// <list type="bullet">
/// <item><c>kernel &lt;iterations&gt; &lt;out&gt; [loop]</c>: the Multiboot ELF32 kernel (ActorVm, QEMU
/// -kernel); it leaves through the debug-exit port 0xF4 with 0 (the integer loop checks its
/// checksum first).</item>
/// <item><c>bootsector &lt;iterations&gt; &lt;out&gt; [loop]</c>: the 512-byte floppy boot sector for Bochs
/// (<see cref="BootSector"/>): the same loop, then Bochs' shutdown port.</item>
/// </list>
/// The loop defaults to <c>integer</c>, the anchor loop of issue 7.
/// </summary>
public static class CompareImages
{
    public static int Run(string[] args)
    {
        if (args.Length is < 3 or > 4 || !int.TryParse(args[1], out var iterations) || iterations <= 0)
        {
            Console.Error.WriteLine($"usage: kernel|bootsector <iterations> <output file> [{string.Join("|", BenchGuests.All.Select(g => g.Name))}]");
            return 2;
        }

        BenchGuests.BenchGuest guest;
        try
        {
            guest = BenchGuests.Find(args.Length == 4 ? args[3] : "integer");
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }

        var bytes = args[0] == "kernel" ? guest.Build(iterations, KernelFormat.Elf32) : BootSector.Build(guest, iterations);
        File.WriteAllBytes(args[2], bytes);
        return 0;
    }
}
