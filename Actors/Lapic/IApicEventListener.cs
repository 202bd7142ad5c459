using ActorVm.Hardware.Apic;

namespace ActorVm.Actors.Lapic;

/// <summary>
/// Hooks on what the LAPIC actors send and accept, for the host's trace-event JSON (flow arrows
/// from sender to receiver). Null by default: each call site costs one null test. Calls come
/// from the LAPIC actors of different vCPUs concurrently; implementations must be thread-safe.
/// </summary>
public interface IApicEventListener
{
    /// <summary>A fixed-mode ICR write of <paramref name="vcpu"/> left its LAPIC (kvm_apic_send_ipi).</summary>
    void IpiSent(int vcpu, InterruptMessage message);

    /// <summary><paramref name="vcpu"/>'s LAPIC accepted a fixed interrupt from <see cref="InterruptMessage.SourceVcpu"/> into IRR (__apic_accept_irq).</summary>
    void IpiAccepted(int vcpu, InterruptMessage message);

    /// <summary><paramref name="vcpu"/>'s LAPIC timer expired and raised LVTT (apic_timer_expired).</summary>
    void TimerFired(int vcpu);
}
