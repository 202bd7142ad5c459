using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// A 512-byte floppy boot sector that runs one of <see cref="BenchGuests"/>' loops on Bochs,
/// which boots floppies but not Multiboot kernels. The BIOS loads it at 0x7C00 in real mode;
/// it loads a GDT, sets CR0.PE and far-jumps to 32-bit code. A 64-bit loop then builds the same
/// page tables as <c>MultibootKernelBuilder</c> (PML4 → PDPT → PD of 2 MiB pages identity mapping
/// the first 1 GiB) and enters long mode in the order of SDM Vol. 3 "Initializing IA-32e Mode" (CR4.PAE, CR3,
/// EFER.LME, CR0.PG, far jump to a 64-bit code segment). After the loop it writes "Shutdown" to
/// Bochs' port 0x8900, which ends the simulation (Bochs iodev/unmapped).
/// </summary>
public static class BootSector
{
    // Layout inside the sector (Place checks that no section runs into the next).
    private const ulong BootAddress = 0x7C00;
    private const ulong Code32Address = 0x7C40;
    private const ulong Code64Address = 0x7D00;
    private const ulong GdtAddress = 0x7DC0;
    private const ulong GdtrAddress = 0x7DE0;
    private const ulong SignatureAddress = 0x7DFE;

    // Page tables below the boot sector, in memory the BIOS leaves free (0x1000-0x3FFF).
    private const uint Pml4Address = 0x1000;
    private const uint PdptAddress = 0x2000;
    private const uint PdAddress = 0x3000;

    private const ushort CodeSelector32 = 0x08, DataSelector = 0x10, CodeSelector64 = 0x18;

    public static byte[] Build(BenchGuests.BenchGuest guest, int iterations)
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
        r.jmp(CodeSelector32, (uint)Code32Address);
        Place(sector, r, BootAddress, Code32Address);

        var p = new Assembler(32);
        FlatDataAndStack(p);
        if (guest.Bitness == 64)
        {
            EnterLongMode(p);
            Place(sector, p, Code32Address, Code64Address);

            var q = new Assembler(64);
            FlatDataAndStack(q);
            guest.EmitLoop(q, iterations);
            Shutdown(q);
            Place(sector, q, Code64Address, GdtAddress);
        }
        else
        {
            guest.EmitLoop(p, iterations);
            Shutdown(p);
            Place(sector, p, Code32Address, GdtAddress);
        }

        // Null, flat 4 GiB code32 (0x08) and data (0x10), and a 64-bit code segment (0x18, L=1).
        Write(sector, GdtAddress + 8, 0x00CF9A000000FFFFUL);
        Write(sector, GdtAddress + 16, 0x00CF92000000FFFFUL);
        Write(sector, GdtAddress + 24, 0x00AF9A000000FFFFUL);
        BitConverter.GetBytes((ushort)31).CopyTo(sector, (int)(GdtrAddress - BootAddress));
        BitConverter.GetBytes((uint)GdtAddress).CopyTo(sector, (int)(GdtrAddress - BootAddress) + 2);
        sector[SignatureAddress - BootAddress] = 0x55;
        sector[SignatureAddress - BootAddress + 1] = 0xAA;
        return sector;
    }

    /// <summary>Clears the three tables, links PML4[0] → PDPT → PD, fills the PD with 512 2 MiB pages, then switches.</summary>
    private static void EnterLongMode(Assembler p)
    {
        p.cld();
        p.mov(edi, Pml4Address);
        p.xor(eax, eax);
        p.mov(ecx, 3 * 4096 / 4);
        p.rep.stosd();
        p.mov(__dword_ptr[Pml4Address], PdptAddress | 3);
        p.mov(__dword_ptr[PdptAddress], PdAddress | 3);
        p.mov(edi, PdAddress);
        p.mov(eax, 0x83); // present, writable, PS (2 MiB page)
        p.mov(ecx, 512);
        var fill = p.CreateLabel();
        p.Label(ref fill);
        p.mov(__dword_ptr[edi], eax);
        p.add(eax, 0x200000);
        p.add(edi, 8);
        p.dec(ecx);
        p.jnz(fill);

        p.mov(eax, cr4);
        p.or(eax, 0x20); // CR4.PAE
        p.mov(cr4, eax);
        p.mov(eax, Pml4Address);
        p.mov(cr3, eax);
        p.mov(ecx, 0xC0000080); // IA32_EFER
        p.rdmsr();
        p.or(eax, 0x100); // LME
        p.wrmsr();
        p.mov(eax, cr0);
        p.or(eax, unchecked((int)0x80000000)); // PG
        p.mov(cr0, eax);
        p.jmp(CodeSelector64, (uint)Code64Address);
    }

    /// <summary>"Shutdown" to port 0x8900 ends Bochs; the halt loop is there if it does not.</summary>
    private static void Shutdown(Assembler a)
    {
        a.mov(dx, 0x8900);
        foreach (var c in "Shutdown")
        {
            a.mov(al, (byte)c);
            a.@out(dx, al);
        }

        var halt = a.CreateLabel();
        a.Label(ref halt);
        a.hlt();
        a.jmp(halt);
    }

    private static void Write(byte[] sector, ulong address, ulong value) =>
        BitConverter.GetBytes(value).CopyTo(sector, (int)(address - BootAddress));

    private static void Place(byte[] sector, Assembler a, ulong address, ulong limit)
    {
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        var code = stream.ToArray();
        if (address + (ulong)code.Length > limit)
        {
            throw new InvalidOperationException($"boot sector code at 0x{address:x} is {code.Length} bytes, past 0x{limit:x}");
        }

        code.CopyTo(sector, (int)(address - BootAddress));
    }

    /// <summary>DS, ES and SS from the flat data descriptor, the stack below the boot sector (after each mode switch).</summary>
    private static void FlatDataAndStack(Assembler a)
    {
        a.mov(ax, DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(esp, (uint)BootAddress);
    }
}
