namespace ActorVm.Hardware.X86;

/// <summary>MSR indices the CPU itself implements (SDM vol. 4).</summary>
public static class Msr
{
    public const uint Tsc = 0x10, ApicBase = 0x1B, FeatureControl = 0x3A, TscAdjust = 0x3B, SpecCtrl = 0x48;
    public const uint BiosSignId = 0x8B, Mtrrcap = 0xFE, SysenterCs = 0x174, SysenterEsp = 0x175, SysenterEip = 0x176;
    public const uint McgCap = 0x179, McgStatus = 0x17A, MiscEnable = 0x1A0, Pat = 0x277, MtrrDefType = 0x2FF;
    public const uint TscDeadline = 0x6E0, X2ApicFirst = 0x800, X2ApicLast = 0x8FF, X2ApicIcr = 0x830;
    public const uint Efer = 0xC0000080, Star = 0xC0000081, Lstar = 0xC0000082, Cstar = 0xC0000083, Fmask = 0xC0000084;
    public const uint FsBase = 0xC0000100, GsBase = 0xC0000101, KernelGsBase = 0xC0000102, TscAux = 0xC0000103;
    public const uint KvmSystemTimeNew = 0x4B564D01, KvmWallClockNew = 0x4B564D00;

    public static bool IsX2Apic(uint index) => index is >= X2ApicFirst and <= X2ApicLast;
}

/// <summary>Plain storage for MSRs that only hold a value (SYSENTER, STAR, PAT, MTRRs …).</summary>
public sealed class MsrFile
{
    private readonly Dictionary<uint, ulong> _values = [];

    public ulong this[uint index]
    {
        get => _values.GetValueOrDefault(index);
        set => _values[index] = value;
    }

    public void Reset()
    {
        _values.Clear();
        _values[Msr.Pat] = 0x0007040600070406;
        _values[Msr.MiscEnable] = 1; // fast strings
    }
}
