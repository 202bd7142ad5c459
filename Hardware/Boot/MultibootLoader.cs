using System.Text;
using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Boot;

/// <summary>What the loader placed where; returned for logs and tests.</summary>
public sealed record MultibootBootInfo(
    string Format,
    uint Entry,
    ulong ImageStart,
    ulong ImageEnd,
    uint InfoAddress,
    string CommandLine,
    IReadOnlyList<(uint Start, uint End)> Modules);

/// <summary>
/// Boots a Multiboot v1 kernel the way <c>qemu-system-x86_64 -kernel</c> does, without a BIOS:
/// loads the image (ELF32/ELF64 by PT_LOAD program headers, or the a.out kludge of header flag
/// bit 16), writes the Multiboot information structure (spec 3.3) after the image, and puts the
/// BSP in the entry state of spec 3.2. The APs stay in their reset (wait-for-SIPI) state.
/// </summary>
public static class MultibootLoader
{
    public const uint BootloaderMagic = 0x2BADB002;

    /// <summary>Info flags (spec 3.3).</summary>
    public const uint InfoMemory = 1 << 0, InfoCmdline = 1 << 2, InfoMods = 1 << 3, InfoMmap = 1 << 6, InfoLoaderName = 1 << 9;

    /// <summary>Offsets in the info structure.</summary>
    public const int OffFlags = 0, OffMemLower = 4, OffMemUpper = 8, OffCmdline = 16, OffModsCount = 20, OffModsAddr = 24,
        OffMmapLength = 44, OffMmapAddr = 48, OffLoaderName = 64, InfoSize = 120;

    /// <summary>Conventional memory QEMU's BIOS reports (the EBDA takes the last KiB below 640 KiB).</summary>
    public const ulong LowMemoryEnd = 0x9FC00;

    /// <summary>Flat selectors of the small GDT the loader leaves for the guest (spec: GDTR undefined, but segments usable).</summary>
    public const ushort CodeSelector = 0x08, DataSelector = 0x10;

    public static MultibootBootInfo LoadFile(Machine machine, string kernelPath, string? append = null, string? initrdPath = null)
    {
        var image = ReadFile(kernelPath, "kernel");
        var initrd = initrdPath is null ? null : ReadFile(initrdPath, "initrd");
        return Load(machine, image, kernelPath, append, initrd, initrdPath);
    }

    /// <summary>
    /// Loads <paramref name="image"/> into <paramref name="machine"/>'s RAM and prepares the BSP.
    /// <paramref name="kernelName"/> names the image in errors and is the first word of the
    /// command line, as QEMU passes it.
    /// </summary>
    public static MultibootBootInfo Load(Machine machine, ReadOnlySpan<byte> image, string kernelName, string? append = null,
        byte[]? initrd = null, string? initrdName = null)
    {
        var ram = machine.Memory.RamSize;
        if ((ulong)image.Length > ram)
        {
            throw new KernelLoadException($"{kernelName}: image ({image.Length} bytes) is larger than guest RAM ({ram >> 20} MiB)");
        }

        var header = MultibootHeader.Find(image, kernelName);
        string format;
        uint entry;
        ulong start = ulong.MaxValue, end = 0;
        if (header.HasAddressFields)
        {
            format = "a.out kludge";
            entry = header.EntryAddr;
            (start, end) = LoadAout(machine, image, header, kernelName);
        }
        else if (ElfImage.IsElf(image))
        {
            var elf = ElfImage.Parse(image, kernelName);
            format = elf.Class == 2 ? "ELF64" : "ELF32";
            if (elf.Entry > uint.MaxValue)
            {
                throw new KernelLoadException($"{kernelName}: ELF entry point 0x{elf.Entry:x} is above 4 GiB (Multiboot enters in 32-bit protected mode)");
            }

            entry = (uint)elf.Entry;
            for (var i = 0; i < elf.Segments.Count; i++)
            {
                var s = elf.Segments[i];
                CheckInRam(machine, s.PhysicalAddress, s.MemSize, $"ELF segment {i}", kernelName);
                machine.Memory.WriteBytes(s.PhysicalAddress, image.Slice((int)s.FileOffset, (int)s.FileSize));
                if (s.MemSize > s.FileSize)
                {
                    machine.Memory.Fill(s.PhysicalAddress + s.FileSize, s.MemSize - s.FileSize, 0);
                }

                if (s.MemSize > 0)
                {
                    start = Math.Min(start, s.PhysicalAddress);
                    end = Math.Max(end, s.PhysicalAddress + s.MemSize);
                }
            }
        }
        else
        {
            throw new KernelLoadException($"{kernelName}: not an ELF file, and the Multiboot header does not give load addresses (flags bit 16)");
        }

        if (start == ulong.MaxValue)
        {
            start = end = 0;
        }

        if (entry < start || entry >= end)
        {
            throw new KernelLoadException($"{kernelName}: entry point 0x{entry:x} is outside the loaded image (0x{start:x}-0x{end:x})");
        }

        // Exactly as QEMU builds it: path, a space, the -append string (so "path " without one).
        var cmdline = $"{kernelName} {append}";
        var (infoAddress, modules) = WriteInfo(machine, end, cmdline, initrd, initrdName ?? "initrd", kernelName);
        SetEntryState(machine.Cpus[0], entry, infoAddress);
        return new MultibootBootInfo(format, entry, start, end, infoAddress, cmdline, modules);
    }

    private static byte[] ReadFile(string path, string what)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            throw new KernelLoadException($"{what} file '{path}' not found");
        }
        catch (DirectoryNotFoundException)
        {
            throw new KernelLoadException($"{what} file '{path}' not found");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KernelLoadException($"{what} file '{path}' cannot be read: {e.Message}");
        }
    }

    private static (ulong Start, ulong End) LoadAout(Machine machine, ReadOnlySpan<byte> image, MultibootHeader h, string name)
    {
        // The header's own physical address maps to its file offset (spec 3.1.3).
        if (h.LoadAddr > h.HeaderAddr)
        {
            throw new KernelLoadException($"{name}: a.out kludge load_addr 0x{h.LoadAddr:x} is above header_addr 0x{h.HeaderAddr:x}");
        }

        var fileOffset = (long)h.Offset - (h.HeaderAddr - h.LoadAddr);
        if (fileOffset < 0)
        {
            throw new KernelLoadException($"{name}: a.out kludge load_addr 0x{h.LoadAddr:x} lies before the start of the file");
        }

        var loadEnd = h.LoadEndAddr == 0 ? h.LoadAddr + (ulong)(image.Length - fileOffset) : h.LoadEndAddr;
        if (loadEnd < h.LoadAddr || fileOffset + (long)(loadEnd - h.LoadAddr) > image.Length)
        {
            throw new KernelLoadException($"{name}: a.out kludge load_end_addr 0x{loadEnd:x} is beyond the file's data");
        }

        var bssEnd = h.BssEndAddr == 0 ? loadEnd : h.BssEndAddr;
        if (bssEnd < loadEnd)
        {
            throw new KernelLoadException($"{name}: a.out kludge bss_end_addr 0x{bssEnd:x} is below load_end_addr 0x{loadEnd:x}");
        }

        CheckInRam(machine, h.LoadAddr, bssEnd - h.LoadAddr, "a.out kludge image", name);
        var length = (int)(loadEnd - h.LoadAddr);
        machine.Memory.WriteBytes(h.LoadAddr, image.Slice((int)fileOffset, length));
        if (bssEnd > loadEnd)
        {
            machine.Memory.Fill(loadEnd, bssEnd - loadEnd, 0);
        }

        return (h.LoadAddr, bssEnd);
    }

    private static void CheckInRam(Machine machine, ulong address, ulong length, string what, string name)
    {
        var ram = machine.Memory.RamSize;
        if (address + length > ram || address + length < address)
        {
            throw new KernelLoadException(
                $"{name}: {what} at 0x{address:x}-0x{address + length:x} lies outside guest RAM (0x0-0x{ram:x}, {ram >> 20} MiB)");
        }
    }

    private static (uint Info, IReadOnlyList<(uint, uint)> Modules) WriteInfo(Machine machine, ulong imageEnd, string cmdline,
        byte[]? initrd, string initrdName, string kernelName)
    {
        var ram = machine.Memory.RamSize;

        // Everything goes after the image, page-aligned, as QEMU's multiboot loader places it;
        // never in page 0 (an AP trampoline is written there) and never over the image.
        var cursor = Math.Max(AlignUp(imageEnd, 4096), 0x1000);
        var modules = new List<(uint, uint)>();
        if (initrd is not null)
        {
            var modStart = cursor;
            CheckFits(machine, modStart, (ulong)initrd.Length, "initrd", kernelName);
            machine.Memory.WriteBytes(modStart, initrd);
            modules.Add(((uint)modStart, (uint)(modStart + (ulong)initrd.Length)));
            cursor = AlignUp(modStart + (ulong)initrd.Length, 4096);
        }

        var info = cursor;
        var blob = new List<byte>(new byte[InfoSize]);
        uint Append(byte[] bytes, int align = 1)
        {
            while (blob.Count % align != 0)
            {
                blob.Add(0);
            }

            var at = (uint)(info + (ulong)blob.Count);
            blob.AddRange(bytes);
            return at;
        }

        var mmap = BuildMemoryMap(ram);
        var mmapAddr = Append(mmap, 8);

        // A flat GDT for guests that reload segment registers before loading their own.
        var gdt = new byte[24];
        BitConverter.GetBytes(0x00CF9B000000FFFFUL).CopyTo(gdt, 8);
        BitConverter.GetBytes(0x00CF93000000FFFFUL).CopyTo(gdt, 16);
        var gdtAddr = Append(gdt, 8);

        var cmdlineAddr = Append([.. Encoding.UTF8.GetBytes(cmdline), 0]);
        var loaderAddr = Append([.. "ActorVm"u8, 0]);
        uint modsAddr = 0;
        if (modules.Count > 0)
        {
            var modString = Append([.. Encoding.UTF8.GetBytes(initrdName), 0]);
            var mod = new byte[16];
            BitConverter.GetBytes(modules[0].Item1).CopyTo(mod, 0);
            BitConverter.GetBytes(modules[0].Item2).CopyTo(mod, 4);
            BitConverter.GetBytes(modString).CopyTo(mod, 8);
            modsAddr = Append(mod, 16);
        }

        var s = blob.ToArray();
        void Put(int offset, uint value) => BitConverter.GetBytes(value).CopyTo(s, offset);
        Put(OffFlags, InfoMemory | InfoCmdline | InfoMods | InfoMmap | InfoLoaderName);
        Put(OffMemLower, (uint)(LowMemoryEnd >> 10));
        Put(OffMemUpper, (uint)(Math.Min(ram, 0xFFFF_FFFFUL) > 0x100000 ? (Math.Min(ram, 0xFFFF_FFFFUL) - 0x100000) >> 10 : 0));
        Put(OffCmdline, cmdlineAddr);
        Put(OffModsCount, (uint)modules.Count);
        Put(OffModsAddr, modsAddr);
        Put(OffMmapLength, (uint)mmap.Length);
        Put(OffMmapAddr, mmapAddr);
        Put(OffLoaderName, loaderAddr);
        CheckFits(machine, info, (ulong)s.Length, "Multiboot information", kernelName);
        machine.Memory.WriteBytes(info, s);
        machine.Cpus[0].Gdtr = new DescriptorTable { Base = gdtAddr, Limit = (ushort)(gdt.Length - 1) };
        return ((uint)info, modules);
    }

    private static void CheckFits(Machine machine, ulong address, ulong length, string what, string name)
    {
        if (address + length > machine.Memory.RamSize)
        {
            throw new KernelLoadException(
                $"{name}: no room for the {what} after the image (needs 0x{address:x}-0x{address + length:x}, guest RAM ends at 0x{machine.Memory.RamSize:x})");
        }
    }

    /// <summary>The e820-style map QEMU's BIOS reports: low RAM, the EBDA and BIOS/ACPI areas (0xE0000-0xFFFFF) reserved, RAM above 1 MiB.</summary>
    public static byte[] BuildMemoryMap(ulong ram)
    {
        var entries = new List<(ulong Base, ulong Length, uint Type)>
        {
            (0, Math.Min(ram, LowMemoryEnd), 1),
            (LowMemoryEnd, 0xA0000 - LowMemoryEnd, 2),
            // The BIOS area, where the ACPI tables (MADT at 0xE0000, RSDP at 0xF0000) live.
            (Firmware.AcpiTables.Reserved.Start, Firmware.AcpiTables.Reserved.End - Firmware.AcpiTables.Reserved.Start, 2),
        };
        if (ram > 0x100000)
        {
            entries.Add((0x100000, ram - 0x100000, 1));
        }

        // The BIOS ROM alias below 4 GiB, reserved as QEMU's e820 table reports it.
        entries.Add((0xFFFC0000, 0x40000, 2));
        var bytes = new byte[entries.Count * 24];
        for (var i = 0; i < entries.Count; i++)
        {
            var o = i * 24;
            BitConverter.GetBytes(20u).CopyTo(bytes, o); // size of the entry without this field
            BitConverter.GetBytes(entries[i].Base).CopyTo(bytes, o + 4);
            BitConverter.GetBytes(entries[i].Length).CopyTo(bytes, o + 12);
            BitConverter.GetBytes(entries[i].Type).CopyTo(bytes, o + 20);
        }

        return bytes;
    }

    /// <summary>The machine state of spec 3.2 on the BSP.</summary>
    private static void SetEntryState(Cpu cpu, uint entry, uint info)
    {
        cpu.Cr0 = Cr0Bits.ET | Cr0Bits.PE;
        cpu.Cr4 = 0;
        cpu.Efer = 0;
        cpu.SetFlagsRaw(0x2);
        var code = Segment.FromDescriptor(CodeSelector, 0x00CF9B000000FFFF);
        var data = Segment.FromDescriptor(DataSelector, 0x00CF93000000FFFF);
        for (var s = 0; s < 6; s++)
        {
            cpu.Seg[s] = s == (int)SegReg.CS ? code : data;
        }

        cpu.Gpr[Cpu.RAX] = BootloaderMagic;
        cpu.Gpr[Cpu.RBX] = info;
        cpu.Rip = entry;
        cpu.Halted = false;
        cpu.FlushTlb();
        cpu.UpdateMode();
    }

    private static ulong AlignUp(ulong v, ulong a) => (v + a - 1) & ~(a - 1);
}
