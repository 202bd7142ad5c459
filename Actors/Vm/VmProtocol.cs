using ActorVm.Hardware.Apic;

namespace ActorVm.Actors.Vm;

/// <summary>Messages to the VmActor: lifecycle, the APIC bus, and what vCPUs report.</summary>
public static class VmProtocol
{
    public interface ICommand;

    public interface IEvent;

    public sealed record StartVm : ICommand
    {
        public static StartVm Instance { get; } = new();
    }

    public sealed record PauseVm : ICommand
    {
        public static PauseVm Instance { get; } = new();
    }

    public sealed record ResumeVm : ICommand
    {
        public static ResumeVm Instance { get; } = new();
    }

    /// <summary>End the VM (host request, timeout, debug-exit device).</summary>
    public sealed record StopVm(VmExitKind Kind, int ExitCode, string Detail) : ICommand;

    /// <summary>
    /// An ICR/SELF_IPI write on the APIC bus (kvm_irq_delivery_to_apic). <paramref name="SourceAccepted"/>:
    /// the sending LAPIC already accepted its own share (synchronously, as KVM does), so the bus skips the source.
    /// </summary>
    public sealed record SendIpi(InterruptMessage Message, bool SourceAccepted = false) : ICommand;

    /// <summary>An interrupt message from a platform device (the IOAPIC) onto the APIC bus (kvm_irq_delivery_to_apic from kvm_ioapic_set_irq).</summary>
    public sealed record DeviceInterrupt(InterruptMessage Message) : ICommand;

    /// <summary>A vCPU shut the VM down (triple fault → KVM_EXIT_SHUTDOWN).</summary>
    public sealed record VcpuShutdown(int Vcpu, VmExitKind Kind, string Detail) : IEvent;

    /// <summary>A vCPU cannot go on (an exit without a handler, an internal error).</summary>
    public sealed record VcpuFailed(int Vcpu, string Detail) : IEvent;

    public sealed record GetStatistics : ICommand
    {
        public static GetStatistics Instance { get; } = new();
    }

    /// <summary>Replies with each vCPU's shared request/mode state (VcpuShared[]), for checkers and tests.</summary>
    public sealed record GetVcpuShared : ICommand
    {
        public static GetVcpuShared Instance { get; } = new();
    }

    /// <summary>All vCPUs acknowledged <see cref="PauseVm"/>.</summary>
    public sealed record VmPaused : IEvent
    {
        public static VmPaused Instance { get; } = new();
    }
}
