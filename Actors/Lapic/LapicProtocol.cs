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
    /// <summary>
    /// The 8259's INTR output changed (BSP only: the PIC is wired to its LINT0). A rising level that
    /// this APIC accepts (<see cref="ActorVm.Hardware.Apic.LocalApic.AcceptsPicInterrupts"/>) makes
    /// EVENT and kicks, as kvm_pic's pic_unlock does; the vector comes from the PIC's INTA at injection.
    /// </summary>
    public sealed record PicIntr(bool Level) : ICommand;

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

    /// <summary>
    /// The guest changed CR8 during an entry (sync_cr8_to_lapic): TPR = CR8 &lt;&lt; 4. Dropped if
    /// <paramref name="Epoch"/> is older than the LAPIC's TPR epoch (INIT or a TPR register write
    /// happened since the entry loaded CR8; see <see cref="Vcpu.VcpuShared.Tpr"/>).
    /// </summary>
    public sealed record SetCr8(ulong Cr8, long Epoch) : ICommand;

    /// <summary>Reply to a register access: the value read, or Fault (#GP). For an IA32_APIC_BASE write, the new IA32_APIC_BASE.</summary>
    public sealed record RegisterAccessed(ulong Value, bool Fault) : IEvent;

    /// <summary>kvm_lapic_expired_hv_timer: the preemption timer reached the published deadline.</summary>
    public sealed record HvTimerExpired(ulong Deadline) : ICommand;

    /// <summary>vcpu_block: kvm_lapic_switch_to_sw_timer (false) / kvm_lapic_switch_to_hv_timer (true).</summary>
    public sealed record SwitchTimer(bool Hv) : ICommand;

    /// <summary>The host timer thread's expiry (apic_timer_fn); stale generations are dropped.</summary>
    internal sealed record TimerExpired(long Generation) : ICommand;
}
