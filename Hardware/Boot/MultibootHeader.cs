using System.Buffers.Binary;

namespace ActorVm.Hardware.Boot;

/// <summary>
/// The Multiboot v1 header (Multiboot specification 0.6.96, section 3.1): a 4-byte aligned
/// structure within the first 8192 bytes of the image.
/// </summary>
public sealed record MultibootHeader(int Offset, uint Flags, uint HeaderAddr, uint LoadAddr, uint LoadEndAddr, uint BssEndAddr, uint EntryAddr)
{
    public const uint Magic = 0x1BADB002;
    public const int SearchLimit = 8192;

    /// <summary>Flags bit 0: modules page-aligned; bit 1: memory information required; bit 2: video mode wanted.</summary>
    public const uint PageAlignModules = 1, MemoryInfo = 2, VideoMode = 4;

    /// <summary>Flags bit 16: the address fields are valid (the "a.out kludge").</summary>
    public const uint AddressFields = 1 << 16;

    public bool HasAddressFields => (Flags & AddressFields) != 0;

    /// <summary>Finds and checks the header; throws <see cref="KernelLoadException"/> naming the problem.</summary>
    public static MultibootHeader Find(ReadOnlySpan<byte> image, string name)
    {
        var limit = Math.Min(image.Length, SearchLimit) - 12;
        for (var off = 0; off <= limit; off += 4)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(image[off..]) != Magic)
            {
                continue;
            }

            var flags = BinaryPrimitives.ReadUInt32LittleEndian(image[(off + 4)..]);
            var checksum = BinaryPrimitives.ReadUInt32LittleEndian(image[(off + 8)..]);
            var sum = unchecked(Magic + flags + checksum);
            if (sum != 0)
            {
                throw new KernelLoadException(
                    $"{name}: Multiboot header at offset 0x{off:x} has a bad checksum 0x{checksum:x8} (magic + flags + checksum = 0x{sum:x8}, must be 0)");
            }

            // Bits 0-15 are requirements: a loader that does not understand one must refuse (spec 3.1.2).
            var unknown = flags & 0xFFF8;
            if (unknown != 0)
            {
                throw new KernelLoadException($"{name}: Multiboot header requires unsupported features (flags 0x{unknown:x4})");
            }

            if ((flags & AddressFields) == 0)
            {
                return new MultibootHeader(off, flags, 0, 0, 0, 0, 0);
            }

            if (off + 32 > image.Length)
            {
                throw new KernelLoadException($"{name}: Multiboot header at offset 0x{off:x} is truncated (the a.out kludge needs 32 bytes)");
            }

            var h = image.Slice(off, 32);
            return new MultibootHeader(off, flags, BinaryPrimitives.ReadUInt32LittleEndian(h[12..]), BinaryPrimitives.ReadUInt32LittleEndian(h[16..]),
                BinaryPrimitives.ReadUInt32LittleEndian(h[20..]), BinaryPrimitives.ReadUInt32LittleEndian(h[24..]), BinaryPrimitives.ReadUInt32LittleEndian(h[28..]));
        }

        throw new KernelLoadException($"{name}: no Multiboot header (magic 0x{Magic:x8}) in the first {SearchLimit} bytes");
    }
}
