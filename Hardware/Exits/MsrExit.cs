using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Exits;

/// <summary>What <see cref="MsrExit.Handle"/> did with an MSR exit.</summary>
public enum MsrExitResult
{
    /// <summary>A core MSR: the instruction retired (see the <c>next</c> exit it may have run into).</summary>
    Completed,

    /// <summary>
    /// Unknown MSR or reserved bits: the instruction was abandoned; the caller injects
    /// <see cref="MsrExit.GeneralProtection"/> at the next entry (RIP is the RDMSR/WRMSR).
    /// </summary>
    Fault,

    /// <summary>
    /// An APIC MSR (IA32_APIC_BASE write, x2APIC 0x800-0x8FF, TSC_DEADLINE): nothing was done;
    /// the run loop asks the local APIC, then calls <see cref="MsrExit.CompleteRead"/> /
    /// <see cref="MsrExit.CompleteWrite"/>, or <see cref="MsrExit.Fail"/>.
    /// </summary>
    ApicMsr,
}

/// <summary>
/// RDMSR/WRMSR exits (31/32; KVM's kvm_emulate_rdmsr/wrmsr). Qualification holds ECX (the
/// index); for WRMSR, Value holds EDX:EAX. Core MSRs are handled against the CPU; APIC MSRs are
/// left to the run loop's LAPIC.
/// </summary>
public static class MsrExit
{
    /// <summary>The #GP(0) to inject when an MSR access faults.</summary>
    public static EventInjection GeneralProtection => new(Vector.GP, EventType.HardwareException, 0);

    public static uint Index(in VmExit exit) => (uint)exit.Qualification;

    public static MsrExitResult Handle(Cpu cpu, in VmExit exit, out VmExit? next)
    {
        next = null;
        var index = Index(exit);
        if (exit.Reason == ExitReason.MsrRead)
        {
            // IA32_APIC_BASE reads come from the CPU's copy; its writes go to the APIC.
            if (Cpu.IsApicMsr(index) && index != Msr.ApicBase)
            {
                return MsrExitResult.ApicMsr;
            }

            if (!cpu.TryReadMsr(index, out var value))
            {
                Fail(cpu);
                return MsrExitResult.Fault;
            }

            next = cpu.Complete(value);
            return MsrExitResult.Completed;
        }

        if (exit.Reason != ExitReason.MsrWrite)
        {
            throw new ArgumentException($"not an MSR exit: {exit.Reason}", nameof(exit));
        }

        if (Cpu.IsApicMsr(index))
        {
            return MsrExitResult.ApicMsr;
        }

        if (!cpu.TryWriteMsr(index, exit.Value))
        {
            Fail(cpu);
            return MsrExitResult.Fault;
        }

        next = cpu.Complete();
        return MsrExitResult.Completed;
    }

    /// <summary>Finishes an RDMSR the APIC answered: EDX:EAX = value.</summary>
    public static VmExit? CompleteRead(Cpu cpu, ulong value) => cpu.Complete(value);

    /// <summary>Finishes a WRMSR the APIC accepted.</summary>
    public static VmExit? CompleteWrite(Cpu cpu) => cpu.Complete();

    /// <summary>Abandons the RDMSR/WRMSR; inject <see cref="GeneralProtection"/> at the next entry.</summary>
    public static EventInjection Fail(Cpu cpu)
    {
        cpu.AbandonPendingInstruction();
        return GeneralProtection;
    }
}
