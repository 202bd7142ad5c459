namespace ActorVm.Hardware.X86;

/// <summary>VMX basic exit reasons (SDM vol. 3 appendix C), as KVM names them.</summary>
public enum ExitReason
{
    ExceptionNmi = 0,
    ExternalInterrupt = 1,
    TripleFault = 2,
    Init = 3,
    Sipi = 4,
    InterruptWindow = 7,
    NmiWindow = 8,
    Cpuid = 10,
    Hlt = 12,
    Invd = 13,
    Vmcall = 18,
    IoInstruction = 30,
    MsrRead = 31,
    MsrWrite = 32,
    InvalidState = 33,
    Mtf = 37,
    TprBelowThreshold = 43,
    ApicAccess = 44,
    EoiInduced = 45,
    EptViolation = 48,
    EptMisconfig = 49,
    PreemptionTimer = 52,
    ApicWrite = 56,
    MsrWriteImm = 85,
}

public static class ExitReasonNames
{
    /// <summary>The names KVM's trace events print (VMX_EXIT_REASONS in uapi/asm/vmx.h).</summary>
    public static string TraceName(this ExitReason reason) => reason switch
    {
        ExitReason.ExceptionNmi => "EXCEPTION_NMI",
        ExitReason.ExternalInterrupt => "EXTERNAL_INTERRUPT",
        ExitReason.TripleFault => "TRIPLE_FAULT",
        ExitReason.Init => "INIT_SIGNAL",
        ExitReason.Sipi => "SIPI_SIGNAL",
        ExitReason.InterruptWindow => "INTERRUPT_WINDOW",
        ExitReason.NmiWindow => "NMI_WINDOW",
        ExitReason.Cpuid => "CPUID",
        ExitReason.Hlt => "HLT",
        ExitReason.Invd => "INVD",
        ExitReason.Vmcall => "VMCALL",
        ExitReason.IoInstruction => "IO_INSTRUCTION",
        ExitReason.MsrRead => "MSR_READ",
        ExitReason.MsrWrite => "MSR_WRITE",
        ExitReason.InvalidState => "INVALID_STATE",
        ExitReason.Mtf => "MONITOR_TRAP_FLAG",
        ExitReason.TprBelowThreshold => "TPR_BELOW_THRESHOLD",
        ExitReason.ApicAccess => "APIC_ACCESS",
        ExitReason.EoiInduced => "EOI_INDUCED",
        ExitReason.EptViolation => "EPT_VIOLATION",
        ExitReason.EptMisconfig => "EPT_MISCONFIG",
        ExitReason.PreemptionTimer => "PREEMPTION_TIMER",
        ExitReason.ApicWrite => "APIC_WRITE",
        ExitReason.MsrWriteImm => "MSR_WRITE_IMM",
        _ => ((int)reason).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
