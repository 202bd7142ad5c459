namespace ActorVm.Hardware.X86;

/// <summary>
/// The x87 control state kernels save and restore (FNINIT, FLDCW/FNSTCW, FNSTSW, FXSAVE). The
/// arithmetic stack itself is not modelled: x87 arithmetic raises #UD, counted as unsupported.
/// </summary>
public sealed class FpuState
{
    public ushort Control = 0x37F;
    public ushort Status;
    public ushort Tag = 0xFFFF;
    public readonly UInt128[] Registers = new UInt128[8];

    /// <summary>FNINIT (SDM vol. 1 8.1.10).</summary>
    public void Reset()
    {
        Control = 0x37F;
        Status = 0;
        Tag = 0xFFFF;
        Array.Clear(Registers);
    }
}
