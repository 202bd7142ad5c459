namespace ActorVm.Hardware.X86;

/// <summary>
/// The record of one VM-exit: the basic reason, its qualification, and what the exit handler
/// needs to finish the instruction. For IO and MMIO exits the instruction has not retired; the
/// handler completes it (<see cref="Cpu.CompleteIn"/>, <see cref="Cpu.CompleteMmioRead"/> …).
/// </summary>
public readonly record struct VmExit(
    ExitReason Reason,
    ulong Qualification = 0,
    ulong GuestPhysical = 0,
    ulong Value = 0,
    int Size = 0,
    bool IsWrite = false,
    uint IntrInfo = 0,
    uint ErrorCode = 0,
    long InstructionsRetired = 0)
{
    /// <summary>IO_INSTRUCTION qualification (SDM table 28-5): size-1, direction, string, rep, port.</summary>
    public ushort Port => (ushort)(Qualification >> 16);
    public bool IoIn => (Qualification & 8) != 0;
    public bool IoString => (Qualification & 16) != 0;
    public bool IoRep => (Qualification & 32) != 0;

    public static ulong IoQualification(ushort port, int size, bool isIn, bool isString, bool isRep) =>
        (ulong)(uint)(size - 1) | (isIn ? 8UL : 0) | (isString ? 16UL : 0) | (isRep ? 32UL : 0) | ((ulong)port << 16);
}
