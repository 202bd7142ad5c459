using System.Buffers.Binary;

namespace ActorVm.Hardware.Boot;

/// <summary>One PT_LOAD program header: file bytes to copy to a physical address, then zeros up to MemSize.</summary>
public readonly record struct LoadSegment(ulong PhysicalAddress, ulong FileOffset, ulong FileSize, ulong MemSize);

/// <summary>
/// The parts of an ELF32/ELF64 little-endian executable a Multiboot loader needs (System V ABI,
/// ELF header and program headers): the class, machine, entry point and PT_LOAD segments.
/// </summary>
public sealed record ElfImage(int Class, ushort Machine, ulong Entry, IReadOnlyList<LoadSegment> Segments)
{
    public const ushort EmI386 = 3, EmX86_64 = 62;
    private const uint PtLoad = 1;

    public static bool IsElf(ReadOnlySpan<byte> image) =>
        image.Length >= 4 && image[0] == 0x7F && image[1] == (byte)'E' && image[2] == (byte)'L' && image[3] == (byte)'F';

    public static ElfImage Parse(ReadOnlySpan<byte> image, string name)
    {
        if (image.Length < 52)
        {
            throw new KernelLoadException($"{name}: truncated ELF header ({image.Length} bytes)");
        }

        var cls = image[4];
        if (cls is not (1 or 2))
        {
            throw new KernelLoadException($"{name}: unsupported ELF class {cls} (expected 1 for ELF32 or 2 for ELF64)");
        }

        if (image[5] != 1)
        {
            throw new KernelLoadException($"{name}: unsupported ELF data encoding {image[5]} (expected 1, little-endian)");
        }

        var machine = BinaryPrimitives.ReadUInt16LittleEndian(image[18..]);
        if (machine is not (EmI386 or EmX86_64))
        {
            throw new KernelLoadException($"{name}: unsupported ELF machine {machine} (expected EM_386 (3) or EM_X86_64 (62))");
        }

        var is64 = cls == 2;
        if (is64 && image.Length < 64)
        {
            throw new KernelLoadException($"{name}: truncated ELF64 header ({image.Length} bytes)");
        }

        ulong entry, phoff;
        int phentsize, phnum;
        if (is64)
        {
            entry = BinaryPrimitives.ReadUInt64LittleEndian(image[24..]);
            phoff = BinaryPrimitives.ReadUInt64LittleEndian(image[32..]);
            phentsize = BinaryPrimitives.ReadUInt16LittleEndian(image[54..]);
            phnum = BinaryPrimitives.ReadUInt16LittleEndian(image[56..]);
        }
        else
        {
            entry = BinaryPrimitives.ReadUInt32LittleEndian(image[24..]);
            phoff = BinaryPrimitives.ReadUInt32LittleEndian(image[28..]);
            phentsize = BinaryPrimitives.ReadUInt16LittleEndian(image[42..]);
            phnum = BinaryPrimitives.ReadUInt16LittleEndian(image[44..]);
        }

        var minEntSize = is64 ? 56 : 32;
        if (phnum == 0 || phentsize < minEntSize || phoff + (ulong)(phentsize * phnum) > (ulong)image.Length)
        {
            throw new KernelLoadException($"{name}: ELF program headers missing or outside the file (e_phoff 0x{phoff:x}, e_phnum {phnum}, e_phentsize {phentsize})");
        }

        var segments = new List<LoadSegment>();
        for (var i = 0; i < phnum; i++)
        {
            var ph = image[(int)(phoff + (ulong)(i * phentsize))..];
            if (BinaryPrimitives.ReadUInt32LittleEndian(ph) != PtLoad)
            {
                continue;
            }

            LoadSegment seg = is64
                ? new(BinaryPrimitives.ReadUInt64LittleEndian(ph[24..]), BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]),
                      BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]), BinaryPrimitives.ReadUInt64LittleEndian(ph[40..]))
                : new(BinaryPrimitives.ReadUInt32LittleEndian(ph[12..]), BinaryPrimitives.ReadUInt32LittleEndian(ph[4..]),
                      BinaryPrimitives.ReadUInt32LittleEndian(ph[16..]), BinaryPrimitives.ReadUInt32LittleEndian(ph[20..]));
            if (seg.FileOffset + seg.FileSize > (ulong)image.Length || seg.FileOffset + seg.FileSize < seg.FileOffset)
            {
                throw new KernelLoadException($"{name}: ELF segment {i} (file offset 0x{seg.FileOffset:x}, size 0x{seg.FileSize:x}) extends past the end of the file ({image.Length} bytes)");
            }

            if (seg.MemSize < seg.FileSize)
            {
                throw new KernelLoadException($"{name}: ELF segment {i} has p_memsz 0x{seg.MemSize:x} smaller than p_filesz 0x{seg.FileSize:x}");
            }

            segments.Add(seg);
        }

        if (segments.Count == 0)
        {
            throw new KernelLoadException($"{name}: ELF image has no PT_LOAD segment");
        }

        return new ElfImage(cls, machine, entry, segments);
    }
}
