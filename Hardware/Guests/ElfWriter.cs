using System.Buffers.Binary;

namespace ActorVm.Hardware.Guests;

/// <summary>
/// Wraps a flat image in a minimal ELF32 (EM_386) or ELF64 (EM_X86_64) executable with one
/// PT_LOAD program header at file offset 0x1000 (so the Multiboot header, at the start of the
/// segment, stays within the first 8192 bytes).
/// </summary>
public static class ElfWriter
{
    public const int SegmentOffset = 0x1000;

    public static byte[] Write(bool elf64, ReadOnlySpan<byte> segment, ulong address, ulong memSize, ulong entry,
        ushort? machine = null)
    {
        var file = new byte[SegmentOffset + segment.Length];
        var f = file.AsSpan();
        f[0] = 0x7F;
        f[1] = (byte)'E';
        f[2] = (byte)'L';
        f[3] = (byte)'F';
        f[4] = (byte)(elf64 ? 2 : 1);
        f[5] = 1; // little-endian
        f[6] = 1; // EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(f[16..], 2); // ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(f[18..], machine ?? (elf64 ? (ushort)62 : (ushort)3));
        BinaryPrimitives.WriteUInt32LittleEndian(f[20..], 1);
        if (elf64)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(f[24..], entry);
            BinaryPrimitives.WriteUInt64LittleEndian(f[32..], 64); // e_phoff
            BinaryPrimitives.WriteUInt16LittleEndian(f[52..], 64); // e_ehsize
            BinaryPrimitives.WriteUInt16LittleEndian(f[54..], 56); // e_phentsize
            BinaryPrimitives.WriteUInt16LittleEndian(f[56..], 1);
            var ph = f[64..];
            BinaryPrimitives.WriteUInt32LittleEndian(ph, 1); // PT_LOAD
            BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], 7); // RWX
            BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], SegmentOffset);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], address);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], address);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], (ulong)segment.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], memSize);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[48..], 0x1000);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(f[24..], (uint)entry);
            BinaryPrimitives.WriteUInt32LittleEndian(f[28..], 52); // e_phoff
            BinaryPrimitives.WriteUInt16LittleEndian(f[40..], 52); // e_ehsize
            BinaryPrimitives.WriteUInt16LittleEndian(f[42..], 32); // e_phentsize
            BinaryPrimitives.WriteUInt16LittleEndian(f[44..], 1);
            var ph = f[52..];
            BinaryPrimitives.WriteUInt32LittleEndian(ph, 1); // PT_LOAD
            BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], SegmentOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[8..], (uint)address);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[12..], (uint)address);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[16..], (uint)segment.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[20..], (uint)memSize);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[24..], 7);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[28..], 0x1000);
        }

        segment.CopyTo(f[SegmentOffset..]);
        return file;
    }
}
