namespace ActorVm.Hardware.X86;

/// <summary>
/// A preemption-timer deadline (guest TSC) that another thread may publish while a slice runs:
/// the hv-timer deadline of the LAPIC's owner. KVM programs the VMX preemption timer on the vCPU's
/// own thread before it re-enters (vmx_update_hv_timer); here the LAPIC is another actor and may
/// arm the timer after the entry, so the interpreter re-reads this word at its deadline checks.
/// Only Volatile/Interlocked operations touch <see cref="Value"/>; <see cref="ulong.MaxValue"/>
/// means "nothing published".
/// </summary>
public sealed class DeadlineWord
{
    public const ulong None = ulong.MaxValue;

    public long Value = unchecked((long)None);

    public ulong Read() => (ulong)Volatile.Read(ref Value);

    public void Write(ulong deadline) => Volatile.Write(ref Value, unchecked((long)deadline));

    /// <summary>Clears the word if it still holds <paramref name="expected"/>; false if someone published another deadline.</summary>
    public bool TryClear(ulong expected) =>
        Interlocked.CompareExchange(ref Value, unchecked((long)None), unchecked((long)expected)) == unchecked((long)expected);
}
