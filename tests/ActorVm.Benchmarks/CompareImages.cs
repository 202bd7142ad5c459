using ActorVm.Hardware.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// The guest images bench/compare.sh boots on each emulator, all running the anchor loop of
/// <see cref="GuestPrograms.BuildCompute"/> (load, add, xor, shl, store, dec, jnz; 7
/// instructions per iteration) in 32-bit protected mode with flat segments:
/// <list type="bullet">
/// <item><c>kernel &lt;iterations&gt; &lt;out&gt;</c>: the Multiboot ELF32 kernel (ActorVm, QEMU -kernel);
/// it checks its result and leaves through the debug-exit port 0xF4.</item>
/// <item><c>bootsector &lt;iterations&gt; &lt;out&gt;</c>: a 512-byte floppy boot sector for Bochs:
/// enters protected mode, runs the same loop, then asks Bochs to quit through its shutdown
/// port 0x8900 ("Shutdown", Bochs iodev/unmapped).</item>
/// </list>
/// </summary>
public static class CompareImages
{
    private const ulong BootAddress = 0x7C00;
    private const ulong Code32Address = 0x7C80;
    private const ulong GdtAddress = 0x7DB0;
    private const ulong GdtrAddress = 0x7DD0;

    public static int Run(string[] args)
    {
        if (args.Length != 3 || !int.TryParse(args[1], out var iterations) || iterations <= 0)
        {
            Console.Error.WriteLine("usage: kernel|bootsector <iterations> <output file>");
            return 2;
        }

        var bytes = args[0] == "kernel" ? GuestPrograms.BuildCompute(iterations, KernelFormat.Elf32) : BuildBootSector(iterations);
        File.WriteAllBytes(args[2], bytes);
        return 0;
    }

    /// <summary>The boot sector: 16-bit set-up at 0x7C00, 32-bit loop at 0x7C80, GDT at 0x7DB0, signature 55 AA.</summary>
    public static byte[] BuildBootSector(int iterations)
    {
        var sector = new byte[512];

        var r = new Assembler(16);
        r.cli();
        r.xor(ax, ax);
        r.mov(ds, ax);
        r.mov(ss, ax);
        r.mov(sp, (ushort)BootAddress);
        r.lgdt(__[(ushort)GdtrAddress]);
        r.mov(eax, cr0);
        r.or(eax, 1);
        r.mov(cr0, eax);
        r.jmp(0x08, (uint)Code32Address);
        Place(sector, r, BootAddress);

        var p = new Assembler(32);
        p.mov(ax, 0x10);
        p.mov(ds, ax);
        p.mov(es, ax);
        p.mov(ss, ax);
        p.mov(esp, (uint)BootAddress);
        p.mov(ecx, iterations);
        p.mov(esi, GuestPrograms.ComputeBuffer);
        p.mov(__dword_ptr[esi], 0);
        p.xor(eax, eax);
        var loop = p.CreateLabel();
        p.Label(ref loop);
        p.mov(edx, __dword_ptr[esi]);
        p.add(eax, edx);
        p.xor(eax, 0x9E3779B9u);
        p.shl(eax, 1);
        p.mov(__dword_ptr[esi], eax);
        p.dec(ecx);
        p.jnz(loop);
        p.mov(dx, 0x8900);
        foreach (var c in "Shutdown")
        {
            p.mov(al, (byte)c);
            p.@out(dx, al);
        }

        var halt = p.CreateLabel();
        p.Label(ref halt);
        p.hlt();
        p.jmp(halt);
        Place(sector, p, Code32Address);

        // Null, flat 4 GiB code (0x08) and data (0x10) descriptors; GDTR limit and base.
        BitConverter.GetBytes(0x00CF9A000000FFFFUL).CopyTo(sector, (int)(GdtAddress - BootAddress) + 8);
        BitConverter.GetBytes(0x00CF92000000FFFFUL).CopyTo(sector, (int)(GdtAddress - BootAddress) + 16);
        BitConverter.GetBytes((ushort)23).CopyTo(sector, (int)(GdtrAddress - BootAddress));
        BitConverter.GetBytes((uint)GdtAddress).CopyTo(sector, (int)(GdtrAddress - BootAddress) + 2);
        sector[510] = 0x55;
        sector[511] = 0xAA;
        return sector;
    }

    private static void Place(byte[] sector, Assembler a, ulong address)
    {
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        var code = stream.ToArray();
        var limit = address == BootAddress ? Code32Address : GdtAddress;
        if (address + (ulong)code.Length > limit)
        {
            throw new InvalidOperationException($"boot sector code at 0x{address:x} is {code.Length} bytes, past 0x{limit:x}");
        }

        code.CopyTo(sector, (int)(address - BootAddress));
    }
}
