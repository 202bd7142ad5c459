using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using Akka.Actor;
using static ActorVm.Actors.Lapic.LapicProtocol;

namespace ActorVm.Actors.Lapic;

/// <summary>
/// Owns one <see cref="LocalApic"/>: only this actor reads or writes its state. Whatever the run
/// loop and the vendor layer must know without asking is published into <see cref="VcpuShared"/>
/// (the highest deliverable vector, queued NMIs, INIT/SIPI, the hv-timer deadline), always in
/// KVM's order: update the state, publish, make the request, kick (__apic_accept_irq).
/// <para>
/// Acknowledge for injection is a message round trip: the run loop, which has decided to inject
/// an IRQ (IF=1, no shadow, a vector above PPR published here), sends
/// <see cref="AcknowledgeInterrupt"/>; this actor moves IRR→ISR and replies with the vector and the
/// next deliverable one. One round trip per injected IRQ keeps IRR/ISR/PPR owned by one actor
/// without locks; the vCPU is outside guest mode meanwhile, as in kvm_cpu_get_interrupt.
/// </para>
/// </summary>
public sealed class LapicActor : ReceiveActor
{
    private readonly VcpuContext _ctx;
    private readonly LocalApic _apic;
    private readonly IActorRef _bus;
    private readonly HostTimer _timer;
    private readonly bool _hvBackend;
    private bool _hvInUse;
    private long _generation;
    private ulong _armedDeadline = ulong.MaxValue;

    public LapicActor(VcpuContext ctx, IActorRef bus, HostTimer timer)
    {
        _ctx = ctx;
        _bus = bus;
        _timer = timer;
        var model = ctx.Cpu.Model;
        _apic = new LocalApic(ctx.Id, new ApicConfig(ctx.Cpu.Clock.Frequency, model.TscDeadline, model.X2Apic, model.PhysicalAddressBits));
        _hvBackend = ctx.Options.EffectiveTimer == TimerBackend.Hv;
        _hvInUse = _hvBackend;

        Receive<AcceptInterrupt>(m => Accept(m.Message, m.MatchDestination));
        Receive<AcknowledgeInterrupt>(_ => Acknowledge());
        Receive<ReadMmio>(m => Sender.Tell(new RegisterAccessed(_apic.ReadMmio(m.Offset, Now), Fault: false)));
        Receive<WriteMmio>(m =>
        {
            var eoiVector = m.Offset == ApicReg.Eoi ? _apic.HighestIsr() : -1;
            Apply(_apic.WriteMmio(m.Offset, (uint)m.Value, Now), eoiVector);
            Sender.Tell(new RegisterAccessed(0, Fault: false));
        });
        Receive<ReadMsr>(m =>
        {
            var ok = _apic.TryReadMsr(m.Index, Now, out var value);
            Sender.Tell(new RegisterAccessed(value, !ok));
        });
        Receive<WriteMsr>(WriteMsr);
        Receive<HvTimerExpired>(m =>
        {
            // kvm_lapic_expired_hv_timer: ignore if the hv timer is no longer in use or was re-armed.
            if (_hvInUse && m.Deadline == _armedDeadline)
            {
                Expire();
            }
        });
        Receive<TimerExpired>(m =>
        {
            if (m.Generation == _generation && !_hvInUse)
            {
                Expire();
            }
        });
        Receive<SwitchTimer>(m => SwitchTimer(m.Hv));
    }

    public static Props Props(VcpuContext ctx, IActorRef bus, HostTimer timer) =>
        Akka.Actor.Props.Create(() => new LapicActor(ctx, bus, timer));

    private ulong Now => _ctx.Cpu.Clock.ReadTsc();

    private VcpuShared Shared => _ctx.Shared;

    /// <summary>__apic_accept_irq: state, then publish, then request, then kick.</summary>
    private void Accept(InterruptMessage message, bool matchDestination)
    {
        if (matchDestination && !_apic.MatchesDestination(message))
        {
            return;
        }

        if (_ctx.Trace.AcceptIrq)
        {
            _ctx.Trace.KvmApicAcceptIrq(_apic.ApicId, message.Mode, message.Level, message.Vector);
        }

        if (!_apic.AcceptInterrupt(message))
        {
            return;
        }

        var faults = _ctx.Options.Faults;
        if (faults?.KickBeforeRequest == true)
        {
            Shared.Kick(); // negative control: breaks "request, then kick"
        }

        switch (message.Mode)
        {
            case DeliveryMode.Nmi:
                for (var n = _apic.TakeAllNmis(); n > 0; n--)
                {
                    Shared.QueueNmi();
                }

                Shared.MakeRequest(KvmRequest.Nmi);
                break;
            case DeliveryMode.Init:
                if (_apic.TakePendingInit())
                {
                    Shared.PostInit();
                    _apic.InitReset();
                    Publish();
                }

                Shared.MakeRequest(KvmRequest.Event);
                break;
            case DeliveryMode.StartUp:
                if (_apic.TryTakeSipi(out var vector))
                {
                    Shared.PostSipi(vector);
                }

                Shared.MakeRequest(KvmRequest.Event);
                break;
            default:
                Publish();
                Shared.MakeRequest(KvmRequest.Event);
                break;
        }

        faults?.Delay();
        if (faults?.KickBeforeRequest != true)
        {
            Shared.Kick();
        }
    }

    private void Acknowledge()
    {
        var vector = _apic.TryAcknowledge(out var v) ? v : -1;
        Publish();
        Sender.Tell(new InterruptAcknowledged(vector, Shared.HighestDeliverable));
    }

    private void WriteMsr(WriteMsr m)
    {
        var eoiVector = m.Index == ApicReg.ToMsr(ApicReg.Eoi) ? _apic.HighestIsr() : -1;
        var ok = _apic.TryWriteMsr(m.Index, m.Value, Now, out var effects);
        if (ok)
        {
            Apply(effects, eoiVector);
        }

        if (m.Reply)
        {
            Sender.Tell(new RegisterAccessed(0, !ok));
        }
    }

    /// <summary>Carries out a register write's effects (kvm_lapic_reg_write's callers).</summary>
    private void Apply(ApicWriteEffects effects, int eoiVector)
    {
        if (effects.Ipi is { } ipi)
        {
            if (_ctx.Trace.ApicIpi)
            {
                _ctx.Trace.KvmApicIpi(ipi.IcrLow, ipi.Destination);
            }

            // kvm_apic_send_ipi delivers to the sender itself synchronously (the write's own
            // vCPU waits for our reply), so a self-IPI is pending before the guest runs on; the
            // bus carries the message to every other LAPIC.
            var self = ipi.Shorthand switch
            {
                Shorthand.Self or Shorthand.AllIncludingSelf => true,
                Shorthand.AllExcludingSelf => false,
                _ => _apic.MatchesDestination(ipi),
            };
            if (self)
            {
                Accept(ipi, matchDestination: false);
            }

            if (ipi.Shorthand != Shorthand.Self)
            {
                _bus.Tell(new VmProtocol.SendIpi(ipi, SourceAccepted: self));
            }
        }

        if (eoiVector >= 0 && effects.EventNeeded && _ctx.Trace.Eoi)
        {
            _ctx.Trace.KvmEoi(_apic.ApicId, eoiVector);
        }

        if (effects.TimerChanged)
        {
            ArmTimer();
        }

        if (effects.EventNeeded)
        {
            Publish();
            Shared.MakeRequest(KvmRequest.Event);
            Shared.Kick();
        }
        else
        {
            Publish();
        }
    }

    /// <summary>apic_timer_expired + kvm_inject_apic_timer_irqs, collapsed: the model raises LVTT into IRR.</summary>
    private void Expire()
    {
        var raised = _apic.TimerExpired(Now);
        ArmTimer();
        Publish();

        // UNBLOCK wakes a halted vCPU's check_block even when the IRQ is not deliverable; EVENT
        // makes the run loop inject it. Both before the kick (request-less kicks are never right).
        Shared.MakeRequest(KvmRequest.Unblock);
        if (raised)
        {
            Shared.MakeRequest(KvmRequest.Event);
        }

        Shared.Kick();
    }

    /// <summary>start_apic_timer: hv backend publishes the deadline for the slice to check; sw backend arms the host timer.</summary>
    private void ArmTimer()
    {
        var deadline = _apic.TimerDeadline;
        _armedDeadline = deadline;
        Shared.TimerArmed = deadline != ulong.MaxValue;
        _generation++;
        if (_hvInUse)
        {
            // Every write that re-arms the timer reaches us while its vCPU waits outside the guest
            // (slowpath) or in the fastpath for our reply: the next entry reads the new deadline.
            Shared.HvDeadline = deadline == ulong.MaxValue ? VcpuShared.NoDeadline : deadline;
            if (_ctx.Trace.HvTimerState)
            {
                _ctx.Trace.KvmHvTimerState(_ctx.Id, hvTimerInUse: true);
            }
        }
        else if (deadline != ulong.MaxValue)
        {
            _timer.Schedule(deadline, Self, new TimerExpired(_generation));
        }
    }

    /// <summary>kvm_lapic_switch_to_sw_timer / kvm_lapic_switch_to_hv_timer around vcpu_block.</summary>
    private void SwitchTimer(bool hv)
    {
        if (!_hvBackend || hv == _hvInUse)
        {
            return;
        }

        _hvInUse = hv;
        if (!hv)
        {
            Shared.HvDeadline = VcpuShared.NoDeadline;
        }

        if (_ctx.Trace.HvTimerState)
        {
            _ctx.Trace.KvmHvTimerState(_ctx.Id, hv);
        }

        if (_apic.TimerDeadline != ulong.MaxValue && _apic.TimerDeadline <= Now)
        {
            Expire();
            return;
        }

        ArmTimer();
    }

    private void Publish() => Shared.HighestDeliverable = _apic.HighestPendingDeliverable();
}
