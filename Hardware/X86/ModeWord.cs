namespace ActorVm.Hardware.X86;

/// <summary>
/// KVM's vcpu->mode, shared between the vCPU's own thread and every thread that kicks it. Only
/// Volatile/Interlocked operations touch <see cref="Value"/>. The interpreter polls it at block
/// boundaries: EXITING_GUEST_MODE there is the "reschedule IPI" that ends the slice with exit 1.
/// </summary>
public sealed class ModeWord
{
    public const int OutsideGuestMode = 0;
    public const int InGuestMode = 1;
    public const int ExitingGuestMode = 2;

    public int Value;

    public int Read() => Volatile.Read(ref Value);

    /// <summary>The kick: CAS IN→EXITING. Returns the previous mode.</summary>
    public int TryExit() => Interlocked.CompareExchange(ref Value, ExitingGuestMode, InGuestMode);

    public void Set(int mode) => Volatile.Write(ref Value, mode);
}
