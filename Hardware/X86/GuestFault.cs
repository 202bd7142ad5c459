namespace ActorVm.Hardware.X86;

/// <summary>Architectural exception vectors (SDM vol. 3 table 6-1).</summary>
public static class Vector
{
    public const byte DE = 0, DB = 1, NMI = 2, BP = 3, OF = 4, BR = 5, UD = 6, NM = 7, DF = 8;
    public const byte TS = 10, NP = 11, SS = 12, GP = 13, PF = 14, MF = 16, AC = 17, MC = 18, XM = 19;

    /// <summary>Exceptions that push an error code.</summary>
    public static bool HasErrorCode(byte vector) => vector is DF or TS or NP or SS or GP or PF or AC;

    /// <summary>Contributory class for the #DF rules (SDM table 6-5).</summary>
    public static bool IsContributory(byte vector) => vector is DE or TS or NP or SS or GP;
}

/// <summary>
/// Raised inside an instruction handler when the instruction faults. The slice loop catches it,
/// restores RIP to the faulting instruction and delivers the exception through the IDT.
/// </summary>
public sealed class GuestFault(byte vector, uint? errorCode = null) : Exception
{
    public byte Vector { get; } = vector;
    public uint? ErrorCode { get; } = errorCode;

    public override string Message => ErrorCode is { } e ? $"#{Name(Vector)}({e:x})" : $"#{Name(Vector)}";

    public static GuestFault Gp(uint errorCode = 0) => new(X86.Vector.GP, errorCode);
    public static GuestFault Ud() => new(X86.Vector.UD);

    public static string Name(byte vector) => vector switch
    {
        0 => "DE", 1 => "DB", 2 => "NMI", 3 => "BP", 4 => "OF", 5 => "BR", 6 => "UD", 7 => "NM",
        8 => "DF", 10 => "TS", 11 => "NP", 12 => "SS", 13 => "GP", 14 => "PF", 16 => "MF",
        17 => "AC", 18 => "MC", 19 => "XM", _ => vector.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// Raised by a memory access that a device outside the slice must complete (the APIC page or
/// unclaimed MMIO). The instruction is restarted after the exit handler supplies the value.
/// </summary>
internal sealed class MmioExit(VmExit exit) : Exception
{
    public VmExit Exit { get; } = exit;
}
