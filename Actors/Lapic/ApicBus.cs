using ActorVm.Actors.Vcpu;
using ActorVm.Hardware.Apic;

namespace ActorVm.Actors.Lapic;

/// <summary>
/// The part of the APIC bus that needs more than one LAPIC at a time: lowest-priority
/// arbitration (SDM 11.6.2.4; KVM kvm_irq_delivery_to_apic_fast → kvm_apic_map_get_dest_lapic).
/// Fixed, NMI, INIT and SIPI messages are offered to each LAPIC, which matches the destination
/// itself; a lowest-priority message must reach exactly one of the matching APICs, so the bus
/// picks it with <see cref="LocalApic.Route"/> (lowest APR, ties to the lowest APIC ID).
/// </summary>
public static class ApicBus
{
    /// <summary>
    /// The vCPU that accepts a lowest-priority <paramref name="message"/>, or -1 when no enabled
    /// APIC matches (the message is dropped, as on hardware). The candidates' state is read
    /// without their actors' involvement (see <see cref="VcpuContext.Apic"/>): a priority that
    /// changes meanwhile can only make another matching APIC win, never a second delivery.
    /// </summary>
    public static int LowestPriorityTarget(IReadOnlyList<VcpuContext> vcpus, in InterruptMessage message)
    {
        var apics = new List<LocalApic>(vcpus.Count);
        foreach (var v in vcpus)
        {
            if (v.Apic is { } apic)
            {
                apics.Add(apic);
            }
        }

        var targets = LocalApic.Route(apics, message);
        return targets.Count == 1 ? targets[0].VcpuId : -1;
    }
}
