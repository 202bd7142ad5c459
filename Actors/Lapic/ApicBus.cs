using ActorVm.Actors.Vcpu;
using ActorVm.Hardware.Apic;
using Akka.Actor;

namespace ActorVm.Actors.Lapic;

/// <summary>
/// The APIC bus (KVM kvm_irq_delivery_to_apic): carries an interrupt message straight from
/// whoever sends it (a LAPIC's ICR write, the vCPU's x2APIC ICR fastpath, a PV IPI hypercall, the
/// IOAPIC through the VM) to the target LAPIC actors, without a hop through the VM actor. Like
/// KVM's apic map it is read without locks from any thread: the LAPIC actors' refs are fixed at
/// creation, and lowest-priority arbitration reads the candidates' state as KVM reads their
/// priorities (SDM 11.6.2.4; kvm_apic_map_get_dest_lapic).
/// <para>
/// Physical destinations and shorthands go to the target only (the APIC ID is the vCPU index);
/// a logical destination or a broadcast is offered to every LAPIC, which matches it against its
/// own LDR/DFR. A lowest-priority message reaches exactly one of the matching APICs, picked with
/// <see cref="LocalApic.Route"/> (lowest APR, ties to the lowest APIC ID). A fixed edge-triggered
/// IPI for one x2APIC target is posted (<see cref="VcpuShared.PostInterrupt"/>) instead of sent,
/// so the kick does not wait for a thread to run the target's LAPIC actor.
/// </para>
/// </summary>
public sealed class ApicBus
{
    private readonly IReadOnlyList<VcpuContext> _vcpus;
    private readonly IReadOnlyList<IActorRef> _lapics;

    /// <param name="vcpus">Every vCPU's context (their LAPIC models, for lowest-priority arbitration).</param>
    /// <param name="lapics">Every vCPU's LapicActor, by vCPU index. The list may be filled after construction but before the first message is sent.</param>
    public ApicBus(IReadOnlyList<VcpuContext> vcpus, IReadOnlyList<IActorRef> lapics)
    {
        _vcpus = vcpus;
        _lapics = lapics;
    }

    /// <summary>
    /// kvm_irq_delivery_to_apic: offers <paramref name="m"/> to every LAPIC it may reach except
    /// <paramref name="skip"/> (the source, when it already accepted its own share synchronously;
    /// -1 for none). Thread-safe: only Tells.
    /// </summary>
    public void Send(in InterruptMessage m, int skip)
    {
        if (m.Mode == DeliveryMode.LowestPriority && m.Shorthand is Shorthand.None or Shorthand.AllExcludingSelf)
        {
            Deliver(LowestPriorityTarget(_vcpus, m), m, match: false, skip);
            return;
        }

        switch (m.Shorthand)
        {
            case Shorthand.Self:
                Deliver(m.SourceVcpu, m, match: false, skip);
                return;
            case Shorthand.AllIncludingSelf:
            case Shorthand.AllExcludingSelf:
                for (var i = 0; i < _lapics.Count; i++)
                {
                    if (m.Shorthand == Shorthand.AllIncludingSelf || i != m.SourceVcpu)
                    {
                        Deliver(i, m, match: false, skip);
                    }
                }

                return;
        }

        var broadcast = m.Destination == (m.X2ApicFormat ? ApicBits.X2ApicBroadcast : ApicBits.XApicBroadcast);
        if (!m.Logical && !broadcast)
        {
            // Physical: the destination is an APIC ID; offer it to that vCPU, which checks its own ID
            // (an xAPIC guest may have changed it, so an unknown ID is offered to everyone).
            if (m.Destination < (uint)_lapics.Count)
            {
                Deliver((int)m.Destination, m, match: true, skip);
            }
            else
            {
                for (var i = 0; i < _lapics.Count; i++)
                {
                    Deliver(i, m, match: true, skip);
                }
            }

            return;
        }

        for (var i = 0; i < _lapics.Count; i++)
        {
            Deliver(i, m, match: true, skip);
        }
    }

    private void Deliver(int vcpu, in InterruptMessage m, bool match, int skip)
    {
        if (vcpu == skip || (uint)vcpu >= (uint)_lapics.Count)
        {
            return;
        }

        if (Postable(m, match, vcpu) && TryPost(_vcpus[vcpu], m))
        {
            return;
        }

        _lapics[vcpu].Tell(new LapicProtocol.AcceptInterrupt(m, match));
    }

    /// <summary>
    /// A fixed, edge-triggered, legal vector for exactly this vCPU (a shorthand, or the physical
    /// x2APIC ID that is its index): no destination matching, TMR or ESR work for its LAPIC.
    /// </summary>
    private static bool Postable(in InterruptMessage m, bool match, int vcpu) =>
        m.Mode == DeliveryMode.Fixed && !m.Level && m.Vector >= 16
        && (!match || (!m.Logical && m.X2ApicFormat && m.Destination == (uint)vcpu));

    /// <summary>
    /// __apic_accept_irq on the sender's thread, for a target in x2APIC mode and enabled (read
    /// without its actor, as KVM's delivery reads the target APIC): trace and count the
    /// acceptance, post the vector (PIR, spec §8.6), make EVENT, kick. The kick reaches a running
    /// target at once; its LAPIC actor merges the vector into IRR at its next turn (the run
    /// loop's acknowledge). False: the LAPIC actor must take the message (other modes, a
    /// disabled or xAPIC target, or an injected LAPIC failure that must see every acceptance).
    /// </summary>
    private static bool TryPost(VcpuContext target, in InterruptMessage m)
    {
        var faults = target.Options.Faults;
        if (target.Apic is not { X2ApicMode: true, Enabled: true } apic || faults?.Fail == Stress.FailingActor.Lapic)
        {
            return false;
        }

        if (target.Trace.AcceptIrq)
        {
            target.Trace.KvmApicAcceptIrq(apic.ApicId, m.Mode, m.Level, m.Vector);
        }

        if (m.SourceVcpu >= 0)
        {
            target.Counters.Add(ref target.Counters.IpisReceived);
            target.Options.ApicEvents?.IpiAccepted(target.Id, m);
        }

        var shared = target.Shared;
        if (faults?.KickBeforeRequest == true)
        {
            shared.Kick(); // negative control: breaks "request, then kick"
            faults.Delay();
        }

        shared.PostInterrupt(m.Vector);
        shared.MakeRequest(KvmRequest.Event);
        faults?.Delay();
        if (faults?.KickBeforeRequest != true)
        {
            shared.Kick();
        }

        return true;
    }

    /// <summary>
    /// Whether an x2APIC-format message from <paramref name="source"/> can change the sender's
    /// own LAPIC: a shorthand including self, a physical destination that is its x2APIC ID or the
    /// broadcast, a logical destination whose cluster and bit cover its derived LDR, or an illegal
    /// vector (the sender's ESR logs it, SDM 11.5.3). Only when this is false may the vCPU send
    /// the IPI itself and re-enter at once: otherwise the sender's LAPIC applies the write (and
    /// accepts its share) before the guest runs on, as kvm_apic_send_ipi does synchronously.
    /// </summary>
    public static bool MayReachSource(in InterruptMessage m, int source)
    {
        if (m.Mode is DeliveryMode.Fixed or DeliveryMode.LowestPriority && m.Vector < 16)
        {
            return true;
        }

        switch (m.Shorthand)
        {
            case Shorthand.Self:
            case Shorthand.AllIncludingSelf:
                return true;
            case Shorthand.AllExcludingSelf:
                return false;
        }

        if (!m.X2ApicFormat || m.Destination == ApicBits.X2ApicBroadcast)
        {
            return true;
        }

        if (!m.Logical)
        {
            return m.Destination == (uint)source;
        }

        var ldr = LocalApic.X2ApicLdrOf(source);
        return (ldr >> 16) == (m.Destination >> 16) && (ldr & m.Destination & 0xFFFF) != 0;
    }

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
