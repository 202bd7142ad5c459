using System.Buffers.Binary;
using System.Text;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;
using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Tests.Boot;

public sealed class MultibootLoaderTests
{
    private static Machine NewMachine(ulong mib = 16, int vcpus = 1) =>
        Machine.CreatePc(new MachineConfig(vcpus, mib), clock: new ManualTscClock());

    /// <summary>A hand-made a.out-kludge image: header at file offset 0, code loaded at <paramref name="load"/>.</summary>
    private static byte[] AoutImage(uint load, byte[] code, uint bss = 0, uint flags = MultibootHeader.AddressFields, int? checksum = null)
    {
        var image = new byte[32 + code.Length];
        var h = image.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(h, MultibootHeader.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], checksum is { } c ? (uint)c : unchecked(0u - MultibootHeader.Magic - flags));
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], load);
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], load);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], load + (uint)image.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[24..], bss == 0 ? 0 : load + (uint)image.Length + bss);
        BinaryPrimitives.WriteUInt32LittleEndian(h[28..], load + 32);
        code.CopyTo(image, 32);
        return image;
    }

    [Fact]
    public void AoutKludge_LoadsImage_ZeroesBss_AndSetsEntryState()
    {
        using var m = NewMachine();
        m.Memory.Fill(0x200000, 0x3000, 0xCC);
        var code = new byte[] { 0xF4, 0x90, 0x90, 0x90 };
        var image = AoutImage(0x200000, code, bss: 0x1000);
        var info = MultibootLoader.Load(m, image, "k.bin", "a=1 b");

        Assert.Equal("a.out kludge", info.Format);
        Assert.Equal(image, m.Memory.ReadBytes(0x200000, image.Length));
        Assert.All(m.Memory.ReadBytes(0x200000 + (ulong)image.Length, 0x1000), b => Assert.Equal(0, b));
        var cpu = m.Cpus[0];
        Assert.Equal(0x200020UL, cpu.Rip);
        Assert.Equal(0x2BADB002UL, cpu.Gpr[Cpu.RAX]);
        Assert.Equal(info.InfoAddress, (uint)cpu.Gpr[Cpu.RBX]);
        Assert.Equal(32, cpu.Bitness);
        Assert.True(cpu.ProtectedMode);
        Assert.False(cpu.PagingEnabled);
        Assert.False(cpu.IF);
        for (var s = 0; s < 6; s++)
        {
            Assert.Equal(0UL, cpu.Seg[s].Base);
            Assert.Equal(0xFFFFFFFFu, cpu.Seg[s].Limit);
        }

        Assert.True(cpu.Seg[(int)SegReg.CS].IsCode);
        Assert.True(cpu.Seg[(int)SegReg.CS].Big);
    }

    [Fact]
    public void InfoStructure_HasMemory_Cmdline_Mmap_AndSitsAfterTheImage()
    {
        using var m = NewMachine(32);
        var image = AoutImage(0x100000, [0xF4]);
        var info = MultibootLoader.Load(m, image, "/boot/kernel.elf", "console=ttyS0 x=1");
        var mbi = (ulong)info.InfoAddress;
        Assert.True(mbi >= info.ImageEnd, "info must not overlap the image");
        Assert.True(mbi >= 0x1000, "info must not be in page 0");
        var flags = m.Memory.Read32(mbi);
        Assert.NotEqual(0u, flags & MultibootLoader.InfoMemory);
        Assert.NotEqual(0u, flags & MultibootLoader.InfoCmdline);
        Assert.NotEqual(0u, flags & MultibootLoader.InfoMmap);
        Assert.Equal(639u, m.Memory.Read32(mbi + 4));
        Assert.Equal((32u << 10) - 1024, m.Memory.Read32(mbi + 8));
        Assert.Equal("/boot/kernel.elf console=ttyS0 x=1", ReadCString(m, m.Memory.Read32(mbi + 16)));
        Assert.Equal(0u, m.Memory.Read32(mbi + 20)); // no modules

        var mmapLength = m.Memory.Read32(mbi + 44);
        var mmapAddr = (ulong)m.Memory.Read32(mbi + 48);
        var entries = new List<(ulong Base, ulong Len, uint Type)>();
        for (ulong p = mmapAddr; p < mmapAddr + mmapLength; p += m.Memory.Read32(p) + 4)
        {
            entries.Add((m.Memory.Read64(p + 4), m.Memory.Read64(p + 12), m.Memory.Read32(p + 20)));
        }

        Assert.Contains((0UL, 0x9FC00UL, 1u), entries);
        Assert.Contains((0x100000UL, (32UL << 20) - 0x100000, 1u), entries);
        // The BIOS area holding the ACPI tables (MADT at 0xE0000, RSDP at 0xF0000) is reserved.
        Assert.Contains(entries, e => e.Type == 2 && e.Base <= 0xE0000 && e.Base + e.Len >= 0x100000);
        Assert.DoesNotContain(entries, e => e.Type == 1 && e.Base < 0x100000 && e.Base + e.Len > 0xE0000);
    }

    [Fact]
    public void Cmdline_WithoutAppend_IsTheKernelPathAndASpace_AsQemuPassesIt()
    {
        // Observed with QEMU 7.2: -kernel cmdline.elf without -append gives "cmdline.elf ".
        using var m = NewMachine();
        var info = MultibootLoader.Load(m, AoutImage(0x100000, [0xF4]), "kernel.bin");
        Assert.Equal("kernel.bin ", ReadCString(m, m.Memory.Read32((ulong)info.InfoAddress + 16)));
    }

    [Fact]
    public void Initrd_IsModuleZero()
    {
        using var m = NewMachine();
        var initrd = Encoding.ASCII.GetBytes("NR_CPUS=4\nTEST_DEVICE=0\n");
        var info = MultibootLoader.Load(m, AoutImage(0x100000, [0xF4]), "k", null, initrd, "env.txt");
        var mbi = (ulong)info.InfoAddress;
        Assert.NotEqual(0u, m.Memory.Read32(mbi) & MultibootLoader.InfoMods);
        Assert.Equal(1u, m.Memory.Read32(mbi + 20));
        var mod = (ulong)m.Memory.Read32(mbi + 24);
        var start = m.Memory.Read32(mod);
        var end = m.Memory.Read32(mod + 4);
        Assert.Equal(initrd, m.Memory.ReadBytes(start, (int)(end - start)));
        Assert.Equal("env.txt", ReadCString(m, m.Memory.Read32(mod + 8)));
        Assert.True(start >= info.ImageEnd);
    }

    [Theory]
    [InlineData(KernelFormat.Elf32, "ELF32")]
    [InlineData(KernelFormat.Elf64, "ELF64")]
    [InlineData(KernelFormat.AoutKludge, "a.out kludge")]
    public void BuiltKernels_LoadInEachFormat(KernelFormat format, string expected)
    {
        using var m = NewMachine();
        var k = new MultibootKernelBuilder(bssBytes: 0x3000);
        k.Code32.A.hlt();
        m.Memory.Fill(MultibootKernelBuilder.ImageEnd, 0x3000, 0xAA);
        var info = MultibootLoader.Load(m, k.Build(format), "k");
        Assert.Equal(expected, info.Format);
        Assert.Equal(MultibootKernelBuilder.EntryAddress, info.Entry);
        Assert.Equal(MultibootKernelBuilder.LoadAddress, info.ImageStart);
        Assert.Equal(MultibootKernelBuilder.ImageEnd + 0x3000, info.ImageEnd);
        Assert.Equal(MultibootHeader.Magic, m.Memory.Read32(MultibootKernelBuilder.LoadAddress));
        Assert.All(m.Memory.ReadBytes(MultibootKernelBuilder.ImageEnd, 0x3000), b => Assert.Equal(0, b));
        Assert.Equal(0xF4, m.Memory.Read8(MultibootKernelBuilder.EntryAddress + 5)); // after mov esp, imm32
    }

    [Theory]
    [InlineData(false, "ELF32")]
    [InlineData(true, "ELF64")]
    public void Elf_LoadsSegmentsAtTheirPhysicalAddress_AndZeroesBss(bool elf64, string format)
    {
        // The kvm-unit-tests shape: code at 4 MiB, a multi-megabyte BSS, header flags 0.
        using var m = NewMachine(16);
        var segment = new byte[0x2000];
        BinaryPrimitives.WriteUInt32LittleEndian(segment, MultibootHeader.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(segment.AsSpan(8), unchecked(0u - MultibootHeader.Magic));
        segment[0x100] = 0xF4;
        m.Memory.Fill(0x400000 + 0x2000, 0x300000, 0x55);
        var elf = ElfWriter.Write(elf64, segment, 0x400000, 0x302000, 0x400100);
        var info = MultibootLoader.Load(m, elf, "big.elf");
        Assert.Equal(format, info.Format);
        Assert.Equal(0x400100UL, m.Cpus[0].Rip);
        Assert.Equal(0xF4, m.Memory.Read8(0x400100));
        Assert.All(m.Memory.ReadBytes(0x402000, 0x300000), b => Assert.Equal(0, b));
        Assert.True(info.InfoAddress >= 0x702000);
    }

    [Fact]
    public void ApsStayInResetState()
    {
        using var m = NewMachine(16, vcpus: 2);
        MultibootLoader.Load(m, AoutImage(0x100000, [0xF4]), "k");
        Assert.False(m.Cpus[1].ProtectedMode);
        Assert.Equal(0xFFF0UL, m.Cpus[1].Rip);
    }

    // ---- errors: one line, saying why ----

    private static string LoadError(byte[] image, ulong mib = 16)
    {
        using var m = NewMachine(mib);
        var e = Assert.Throws<KernelLoadException>(() => MultibootLoader.Load(m, image, "k.elf"));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public void MissingFile()
    {
        using var m = NewMachine();
        var e = Assert.Throws<KernelLoadException>(() => MultibootLoader.LoadFile(m, "/nonexistent/kernel.elf"));
        Assert.Equal("kernel file '/nonexistent/kernel.elf' not found", e.Message);
    }

    [Fact]
    public void MissingInitrd()
    {
        using var m = NewMachine();
        var path = Path.GetTempFileName();
        File.WriteAllBytes(path, AoutImage(0x100000, [0xF4]));
        try
        {
            var e = Assert.Throws<KernelLoadException>(() => MultibootLoader.LoadFile(m, path, null, "/nonexistent/initrd"));
            Assert.Equal("initrd file '/nonexistent/initrd' not found", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void NoHeader() =>
        Assert.Equal("k.elf: no Multiboot header (magic 0x1badb002) in the first 8192 bytes", LoadError(new byte[9000]));

    [Fact]
    public void HeaderBeyond8192BytesIsNotFound()
    {
        var image = new byte[12000];
        AoutImage(0x100000, [0xF4]).CopyTo(image, 8192);
        Assert.StartsWith("k.elf: no Multiboot header", LoadError(image));
    }

    [Fact]
    public void BadChecksum() =>
        Assert.Equal("k.elf: Multiboot header at offset 0x0 has a bad checksum 0x00000001 (magic + flags + checksum = 0x1baeb003, must be 0)",
            LoadError(AoutImage(0x100000, [0xF4], checksum: 1)));

    [Fact]
    public void ImageLargerThanRam()
    {
        var image = new byte[3 << 20];
        AoutImage(0x100000, [0xF4]).CopyTo(image, 0);
        Assert.Equal($"k.elf: image ({3 << 20} bytes) is larger than guest RAM (2 MiB)", LoadError(image, mib: 2));
    }

    [Fact]
    public void SegmentOutsideRam()
    {
        var elf = ElfWriter.Write(false, AoutImage(0, [0xF4], flags: 0), 0x1F00000, 0x200000, 0x1F00020);
        Assert.Equal("k.elf: ELF segment 0 at 0x1f00000-0x2100000 lies outside guest RAM (0x0-0x1000000, 16 MiB)", LoadError(elf));
    }

    [Fact]
    public void UnsupportedElfMachine()
    {
        var elf = ElfWriter.Write(false, AoutImage(0, [0xF4], flags: 0), 0x100000, 0x100, 0x100020, machine: 40);
        Assert.Equal("k.elf: unsupported ELF machine 40 (expected EM_386 (3) or EM_X86_64 (62))", LoadError(elf));
    }

    [Fact]
    public void ElfSegmentPastEndOfFile()
    {
        var elf = ElfWriter.Write(false, AoutImage(0, [0xF4], flags: 0), 0x100000, 0x100, 0x100020);
        Array.Resize(ref elf, elf.Length - 8);
        Assert.Equal("k.elf: ELF segment 0 (file offset 0x1000, size 0x21) extends past the end of the file (4121 bytes)", LoadError(elf));
    }

    [Fact]
    public void EntryOutsideImage()
    {
        var elf = ElfWriter.Write(false, AoutImage(0, [0xF4], flags: 0), 0x100000, 0x100, 0x300000);
        Assert.Equal("k.elf: entry point 0x300000 is outside the loaded image (0x100000-0x100100)", LoadError(elf));
    }

    [Fact]
    public void NeitherElfNorAout() =>
        Assert.Equal("k.elf: not an ELF file, and the Multiboot header does not give load addresses (flags bit 16)",
            LoadError(AoutImage(0x100000, [0xF4], flags: 0)));

    [Fact]
    public void UnsupportedRequiredFlag() =>
        Assert.Equal("k.elf: Multiboot header requires unsupported features (flags 0x0100)",
            LoadError(AoutImage(0x100000, [0xF4], flags: MultibootHeader.AddressFields | 0x100)));

    private static string ReadCString(Machine m, ulong address)
    {
        var sb = new StringBuilder();
        for (var b = m.Memory.Read8(address); b != 0; b = m.Memory.Read8(++address))
        {
            sb.Append((char)b);
        }

        return sb.ToString();
    }
}
