using ActorVm.Hardware.Apic;

namespace ActorVm.Actors.Lapic;

/// <summary>Messages to and from a vCPU's LapicActor.</summary>
public static class LapicProtocol
{
    public interface ICommand;

    public interface IEvent;

    /// <summary>An interrupt message from the APIC bus (__apic_accept_irq). <paramref name="MatchDestination"/>: the LAPIC checks the (logical) destination itself.</summary>
    public sealed record AcceptInterrupt(InterruptMessage Message, bool MatchDestination) : ICommand;

    /// <summary>kvm_cpu_get_interrupt: acknowledge the highest deliverable vector (IRR→ISR).</summary>
    public sealed record AcknowledgeInterrupt : ICommand
    {
        public static AcknowledgeInterrupt Instance { get; } = new();
    }

    /// <summary>Reply: the acknowledged vector (-1 if none any more) and the next deliverable one (-1 if none).</summary>
    public sealed record InterruptAcknowledged(int Vector, int NextPending) : IEvent;

    /// <summary>xAPIC MMIO read (APIC_ACCESS) at a page offset.</summary>
    public sealed record ReadMmio(uint Offset, int Size) : ICommand;

    public sealed record WriteMmio(uint Offset, int Size, ulong Value) : ICommand;

    /// <summary>RDMSR of an x2APIC register or TSC_DEADLINE.</summary>
    public sealed record ReadMsr(uint Index) : ICommand;

    /// <summary>WRMSR of an x2APIC register, TSC_DEADLINE or IA32_APIC_BASE; replied with <see cref="RegisterAccessed"/> unless <paramref name="Reply"/> is false.</summary>
    public sealed record WriteMsr(uint Index, ulong Value, bool Reply = true) : ICommand;

    /// <summary>Reply to a register access: the value read, or Fault (#GP).</summary>
    public sealed record RegisterAccessed(ulong Value, bool Fault) : IEvent;

    /// <summary>kvm_lapic_expired_hv_timer: the preemption timer reached the published deadline.</summary>
    public sealed record HvTimerExpired(ulong Deadline) : ICommand;

    /// <summary>vcpu_block: kvm_lapic_switch_to_sw_timer (false) / kvm_lapic_switch_to_hv_timer (true).</summary>
    public sealed record SwitchTimer(bool Hv) : ICommand;

    /// <summary>The host timer thread's expiry (apic_timer_fn); stale generations are dropped.</summary>
    internal sealed record TimerExpired(long Generation) : ICommand;
}
