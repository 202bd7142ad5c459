namespace ActorVm.Hardware.X86;

/// <summary>Segment registers in Iced's order (Register.ES .. Register.GS).</summary>
public enum SegReg
{
    ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5,
}

/// <summary>
/// A segment register with its hidden descriptor cache (SDM 3.4.3). <see cref="Attributes"/>
/// holds descriptor bits 40-55 as VMX encodes them: type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13,
/// D/B 14, G 15.
/// </summary>
public struct Segment
{
    public ushort Selector;
    public ulong Base;
    public uint Limit;
    public ushort Attributes;

    public readonly int Dpl => (Attributes >> 5) & 3;
    public readonly bool Present => (Attributes & 0x80) != 0;
    public readonly bool Long => (Attributes & 0x2000) != 0;
    public readonly bool Big => (Attributes & 0x4000) != 0;
    public readonly int Type => Attributes & 0xF;
    public readonly bool IsCode => (Attributes & 0x18) == 0x18;

    /// <summary>A real-mode segment: base = selector × 16, 64 KiB limit, data read/write.</summary>
    public static Segment Real(ushort selector, ushort attributes = 0x93) =>
        new() { Selector = selector, Base = (ulong)selector << 4, Limit = 0xFFFF, Attributes = attributes };

    /// <summary>Builds the cache from an 8-byte legacy descriptor (SDM figure 3-8).</summary>
    public static Segment FromDescriptor(ushort selector, ulong d)
    {
        var limit = (uint)(d & 0xFFFF) | (uint)((d >> 32) & 0xF0000);
        var attributes = (ushort)((d >> 40) & 0xF0FF);
        if ((attributes & 0x8000) != 0)
        {
            limit = (limit << 12) | 0xFFF;
        }

        var @base = ((d >> 16) & 0xFFFFFF) | (((d >> 56) & 0xFF) << 24);
        return new Segment { Selector = selector, Base = @base, Limit = limit, Attributes = attributes };
    }
}

/// <summary>GDTR/IDTR.</summary>
public struct DescriptorTable
{
    public ulong Base;
    public ushort Limit;
}
