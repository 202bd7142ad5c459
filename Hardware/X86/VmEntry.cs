namespace ActorVm.Hardware.X86;

/// <summary>
/// What the run loop hands the interpreter for one entry (one "VM-entry", KVM's vendor vcpu_run).
/// </summary>
/// <param name="PreemptionDeadlineTsc">
/// Guest-TSC value at which the VMX preemption timer fires (exit 52). 0 fires before the first
/// instruction, after <paramref name="Injection"/> has been delivered (the architectural rule of a
/// zero timer, SDM 26.7.4). <see cref="ulong.MaxValue"/> means no deadline.
/// </param>
/// <param name="Injection">An event to deliver through the IDT/IVT at entry, or null.</param>
/// <param name="InterruptWindowExiting">Exit 7 as soon as RFLAGS.IF=1 and no STI/MOV-SS shadow.</param>
/// <param name="NmiWindowExiting">Exit 8 as soon as NMIs are unblocked.</param>
/// <param name="InstructionBudget">Leave the slice (exit 1, as a host timer tick would) after this many instructions.</param>
/// <param name="DeadlineKnownFar">
/// The caller read the clock moments ago and knows <paramref name="PreemptionDeadlineTsc"/> is far
/// ahead (a soft-disabled timer, vmx_update_hv_timer's -1 value): the first deadline check may wait
/// <see cref="Cpu.DeadlineCheckInterval"/> instructions instead of reading the clock before the
/// first block, which a fastpath re-entry running a handful of instructions would pay every time.
/// </param>
public readonly record struct VmEntry(
    ulong PreemptionDeadlineTsc = ulong.MaxValue,
    EventInjection? Injection = null,
    bool InterruptWindowExiting = false,
    bool NmiWindowExiting = false,
    long InstructionBudget = long.MaxValue,
    bool DeadlineKnownFar = false)
{
    /// <summary>An entry with no deadline, injection or window (a zero-initialised VmEntry would fire the preemption timer at once).</summary>
    public VmEntry()
        : this(PreemptionDeadlineTsc: ulong.MaxValue)
    {
    }
}
