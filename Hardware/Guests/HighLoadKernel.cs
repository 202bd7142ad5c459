using System.Buffers.Binary;
using ActorVm.Hardware.Boot;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

/// <summary>
/// The shape of a kvm-unit-tests x86_64 kernel, built with Iced: an ELF32 Multiboot image (header
/// flags 0, no a.out kludge) whose one program header loads at 4 MiB, followed by a 4 MiB BSS the
/// loader must zero. The 32-bit entry checks the BSS is zero and the command line is a string,
/// builds page tables in the BSS mapping the low 4 GiB (so the APIC page is reachable), enters
/// long mode, and from 64-bit code reads the fw_cfg CPU count and the BSP's APIC ID.
/// </summary>
public static class HighLoadKernel
{
    public const ulong LoadAddress = 0x400000;
    public const ulong Code64Address = LoadAddress + 0x4000;
    public const ulong StringsAddress = LoadAddress + 0x6000;
    public const ulong GdtAddress = LoadAddress + 0x7000;
    public const ulong ImageEnd = LoadAddress + 0x8000;
    public const uint BssBytes = 4 << 20;

    /// <summary>Page tables in the BSS: PML4, PDPT, then four page directories (2 MiB pages).</summary>
    public const uint Pml4 = (uint)ImageEnd + 0x200000;

    /// <summary>Always an ELF32 image whatever <paramref name="format"/> asks: that packaging is what this kernel is about.</summary>
    public static byte[] Build(KernelFormat format = KernelFormat.Elf32)
    {
        _ = format;
        var strings = new StringPool(StringsAddress, (int)(GdtAddress - StringsAddress));
        var c = new GuestAsm(32, LoadAddress, strings);
        var a = c.A;
        for (var i = 0; i < 3; i++)
        {
            a.dd(0u); // Multiboot header, patched below
        }

        a.mov(esp, 0x9F000);
        a.mov(ebp, ebx); // Multiboot information

        // The whole BSS reads zero (the loader zeroed p_memsz beyond p_filesz).
        var bssBad = a.CreateLabel();
        var bssDone = a.CreateLabel();
        a.cld();
        a.mov(edi, (uint)ImageEnd);
        a.mov(ecx, BssBytes / 4);
        a.xor(eax, eax);
        a.repe.scasd();
        a.jne(bssBad);
        c.Print("bss zeroed ok\n");
        a.jmp(bssDone);
        a.Label(ref bssBad);
        c.Print("bss zeroed FAILED\n");
        a.Label(ref bssDone);

        // cmdline (info flag bit 2) points at a NUL-terminated string below 4 GiB.
        var cmdBad = a.CreateLabel();
        var cmdDone = a.CreateLabel();
        var scan = a.CreateLabel();
        a.test(__dword_ptr[ebp], 1 << 2);
        a.jz(cmdBad);
        a.mov(esi, __dword_ptr[ebp + 16]);
        a.mov(ecx, 4096);
        a.Label(ref scan);
        a.cmp(__byte_ptr[esi], 0);
        a.je(cmdDone);
        a.inc(esi);
        a.dec(ecx);
        a.jnz(scan);
        a.Label(ref cmdBad);
        c.Print("cmdline FAILED\n");
        a.Label(ref cmdDone);

        // PML4[0] → PDPT; PDPT[0..3] → four PDs of 512 2-MiB pages each: identity map of 4 GiB.
        a.mov(__dword_ptr[Pml4], Pml4 + 0x1003);
        a.xor(ecx, ecx);
        var pdpt = a.CreateLabel();
        a.Label(ref pdpt);
        a.mov(eax, ecx);
        a.shl(eax, 12);
        a.add(eax, Pml4 + 0x2003);
        a.mov(__dword_ptr[ecx * 8 + (int)(Pml4 + 0x1000)], eax);
        a.inc(ecx);
        a.cmp(ecx, 4);
        a.jb(pdpt);
        a.xor(ecx, ecx);
        var pd = a.CreateLabel();
        a.Label(ref pd);
        a.mov(eax, ecx);
        a.shl(eax, 21);
        a.or(eax, 0x83); // present, writable, 2 MiB
        a.mov(__dword_ptr[ecx * 8 + (int)(Pml4 + 0x2000)], eax);
        a.mov(edx, ecx);
        a.shr(edx, 11); // bits 32+ of the address
        a.mov(__dword_ptr[ecx * 8 + (int)(Pml4 + 0x2004)], edx);
        a.inc(ecx);
        a.cmp(ecx, 2048);
        a.jb(pd);

        a.lgdt(__[(uint)GdtAddress + 0x40]);
        a.mov(eax, cr4);
        a.or(eax, 0x20); // PAE
        a.mov(cr4, eax);
        a.mov(eax, Pml4);
        a.mov(cr3, eax);
        a.mov(ecx, 0xC0000080); // EFER.LME
        a.rdmsr();
        a.or(eax, 0x100);
        a.wrmsr();
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x80000000));
        a.mov(cr0, eax);
        a.jmp(MultibootKernelBuilder.Code64Selector, (uint)Code64Address);

        var k = new GuestAsm(64, Code64Address, strings);
        var b = k.A;
        b.mov(ax, MultibootKernelBuilder.DataSelector);
        b.mov(ds, ax);
        b.mov(es, ax);
        b.mov(ss, ax);
        k.Print("long mode at 4 MiB ok\n");

        b.mov(dx, Devices.FwCfg.SelectorPort);
        b.mov(ax, Devices.FwCfg.NbCpus);
        b.@out(dx, ax);
        b.mov(dx, Devices.FwCfg.DataPort);
        b.@in(al, dx);
        b.movzx(r12d, al);
        k.Print("fw_cfg cpus 0x");
        b.mov(eax, r12d);
        k.PrintHexEax();
        k.Print("\n");
        b.mov(ebx, 0xFEE00020);
        b.mov(eax, __dword_ptr[rbx]); // xAPIC ID, through the page tables' mapping above 1 GiB
        b.shr(eax, 24);
        b.mov(r12d, eax);
        k.Print("bsp apic id 0x");
        b.mov(eax, r12d);
        k.PrintHexEax();
        k.Print("\n");
        k.DebugExit(0);

        var (code32, _) = c.Finish();
        var (code64, _) = k.Finish();
        if (code32.Length > (int)(Code64Address - LoadAddress) || code64.Length > (int)(StringsAddress - Code64Address))
        {
            throw new InvalidOperationException("the 4 MiB kernel's code outgrew its windows");
        }

        var image = new byte[ImageEnd - LoadAddress];
        code32.CopyTo(image, 0);
        code64.CopyTo(image, (int)(Code64Address - LoadAddress));
        strings.ToArray().CopyTo(image, (int)(StringsAddress - LoadAddress));
        var gdt = image.AsSpan((int)(GdtAddress - LoadAddress));
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[8..], 0x00CF9B000000FFFF);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[16..], 0x00CF93000000FFFF);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[24..], 0x00AF9B000000FFFF);
        BinaryPrimitives.WriteUInt16LittleEndian(gdt[0x40..], 31);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[0x42..], GdtAddress);

        // Flags 0: the loader takes the addresses from the ELF program headers.
        BinaryPrimitives.WriteUInt32LittleEndian(image, MultibootHeader.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(4), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(8), unchecked(0u - MultibootHeader.Magic));
        return ElfWriter.Write(elf64: false, image, LoadAddress, (ulong)image.Length + BssBytes, LoadAddress + 12);
    }
}
