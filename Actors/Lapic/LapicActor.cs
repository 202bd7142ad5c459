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
    private readonly IActorRef _vm;
    private readonly HostTimer _timer;
    private readonly bool _hvBackend;
    private readonly bool _ignorePriority;
    private bool _hvInUse;
    private long _generation;
    private ulong _armedDeadline = ulong.MaxValue;
    private long _countedExpiries;
    private long _tprEpoch;

    public LapicActor(VcpuContext ctx, IActorRef vm, HostTimer timer)
    {
        _ctx = ctx;
        _vm = vm;
        _timer = timer;
        var model = ctx.Cpu.Model;
        _apic = new LocalApic(ctx.Id, new ApicConfig(ctx.Cpu.Clock.Frequency, model.TscDeadline, model.X2Apic, model.PhysicalAddressBits));
        _hvBackend = ctx.Options.EffectiveTimer == TimerBackend.Hv;
        _hvInUse = _hvBackend;
        _ignorePriority = ctx.Options.Faults?.IgnorePriority == true;
        ctx.Apic = _apic; // TPR 0 at epoch 0 is what VcpuShared starts with

        Receive<AcceptInterrupt>(m => Accept(m.Message, m.MatchDestination));
        Receive<AcknowledgeInterrupt>(_ => Acknowledge());
        Receive<PicIntr>(m =>
        {
            // pic_unlock: kick the vCPU whose APIC takes the PIC's output. The run loop reads the
            // level itself (kvm_cpu_has_extint), so a falling edge needs nothing.
            if (m.Level && _apic.AcceptsPicInterrupts)
            {
                RaiseEvent();
            }
        });
        Receive<ReadMmio>(m =>
        {
            // A reserved register latches "illegal register address" in ESR, which may raise the
            // LVT error interrupt: that needs EVENT and a kick like any other acceptance.
            var value = _apic.ReadMmio(m.Offset, Now, out var eventNeeded);
            if (eventNeeded)
            {
                RaiseEvent();
            }

            Sender.Tell(new RegisterAccessed(value, Fault: false));
        });
        Receive<WriteMmio>(m =>
        {
            var eoiVector = m.Offset == ApicReg.Eoi ? _apic.HighestIsr() : -1;
            var tpr = _apic.Tpr;
            var before = EoiSnapshot(m.Offset == ApicReg.Eoi);
            Apply(_apic.WriteMmio(m.Offset, (uint)m.Value, Now), eoiVector, tpr);
            ObserveEoi(before);
            Sender.Tell(new RegisterAccessed(0, Fault: false));
        });
        Receive<ReadMsr>(m =>
        {
            var ok = _apic.TryReadMsr(m.Index, Now, out var value);
            Sender.Tell(new RegisterAccessed(value, !ok));
        });
        Receive<WriteMsr>(WriteMsr);
        Receive<SetCr8>(SetCr8);
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

    /// <summary>
    /// An ICR value the vCPU's fastpath posted after delivering the IPI itself is stored before
    /// anything else is handled (as KVM's sync_pir_to_irr merges what senders posted before the
    /// APIC state is looked at), so reads and INIT see the registers in the guest's order.
    /// </summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        if (Shared.TakePostedIcr(out var icr))
        {
            _apic.StoreIcr((uint)icr, (uint)(icr >> 32));
        }

        if (Shared.PirPending)
        {
            SyncPirToIrr();
        }

        return base.AroundReceive(receive, message);
    }

    /// <summary>
    /// sync_pir_to_irr: posted fixed edge-triggered vectors into IRR (the model drops them if the
    /// APIC was disabled meanwhile). The sender already traced and counted the acceptance, made
    /// EVENT and kicked, as __apic_accept_irq does on the sender's CPU; here only the state and
    /// what is published from it change.
    /// </summary>
    private void SyncPirToIrr()
    {
        Span<long> bits = stackalloc long[4];
        if (!Shared.PeekPir(bits))
        {
            return;
        }

        for (var i = 0; i < 4; i++)
        {
            for (var w = (ulong)bits[i]; w != 0; w &= w - 1)
            {
                var vector = (byte)((i << 6) | System.Numerics.BitOperations.TrailingZeroCount(w));
                _apic.AcceptInterrupt(DeliveryMode.Fixed, vector, assert: true, levelTriggered: false);
            }
        }

        // Publish, then clear: a reader of VcpuShared.InterruptPending finds the vector in one
        // place or the other at every moment (else a run loop could decide "nothing pending"
        // between the two and block with the IRQ in IRR and nobody left to kick it).
        Publish();
        Shared.ClearPir(bits);
    }

    public static Props Props(VcpuContext ctx, IActorRef vm, HostTimer timer) =>
        Akka.Actor.Props.Create(() => new LapicActor(ctx, vm, timer));

    private ulong Now => _ctx.Cpu.Clock.ReadTsc();

    private VcpuShared Shared => _ctx.Shared;

    /// <summary>__apic_accept_irq: state, then publish, then request, then kick.</summary>
    private void Accept(InterruptMessage message, bool matchDestination)
    {
        _ctx.Options.Faults?.MaybeFail(Stress.FailingActor.Lapic, _ctx.Id);
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

        if (message.Mode == DeliveryMode.Fixed && message.SourceVcpu >= 0)
        {
            _ctx.Counters.Add(ref _ctx.Counters.IpisReceived);
            _ctx.Options.ApicEvents?.IpiAccepted(_ctx.Id, message);
        }

        var faults = _ctx.Options.Faults;
        if (faults?.KickBeforeRequest == true)
        {
            Shared.Kick(); // negative control: breaks "request, then kick"
            faults.Delay(); // ...and widens the window in which the woken vCPU finds nothing to do
        }

        switch (message.Mode)
        {
            case DeliveryMode.Nmi:
                for (var n = _apic.TakeAllNmis(); n > 0; n--)
                {
                    Shared.QueueNmi();
                }

                faults?.Delay(); // the event is visible before its request: it must not end a HLT yet (I12)
                Shared.MakeRequest(KvmRequest.Nmi);
                break;
            case DeliveryMode.Init:
                if (_apic.TakePendingInit())
                {
                    var sipiWasPending = _ctx.Options.Observer is not null && (Shared.ApicEvents & VcpuShared.ApicSipi) != 0;
                    Shared.PostInit();
                    _ctx.Options.Observer?.ApicEventPosted(_ctx.Id, init: true, sipiWasPending);
                    _apic.InitReset();
                    PublishTpr();
                    ArmTimer(); // the reset stopped the timer: cancel what the old deadline armed
                    Publish();
                    faults?.Delay(); // the same window: INIT posted, EVENT not made yet
                }

                Shared.MakeRequest(KvmRequest.Event);
                break;
            case DeliveryMode.StartUp:
                if (_apic.TryTakeSipi(out var vector))
                {
                    Shared.PostSipi(vector);
                    _ctx.Options.Observer?.ApicEventPosted(_ctx.Id, init: false, sipiWasPending: false);
                    faults?.Delay(); // SIPI posted, EVENT not made yet
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
        var before = _ctx.Options.Observer is null ? null : Stress.ApicSnapshot.Of(_apic);
        int vector;
        if (_ignorePriority && _apic.HighestIrr() is var irr and >= 0)
        {
            // Negative control (FaultInjection.IgnorePriority, breaks I11): INTA of the highest
            // IRR vector whether or not its class beats PPR.
            _apic.AcknowledgeVector((byte)irr);
            vector = irr;
        }
        else
        {
            vector = _apic.TryAcknowledge(out var v) ? v : -1;
        }

        if (before is not null)
        {
            _ctx.Options.Observer!.Acknowledged(_ctx.Id, before, vector);
        }

        Publish();
        Sender.Tell(new InterruptAcknowledged(vector, Shared.HighestDeliverable));
    }

    private void WriteMsr(WriteMsr m)
    {
        var eoiVector = m.Index == ApicReg.ToMsr(ApicReg.Eoi) ? _apic.HighestIsr() : -1;
        var tpr = _apic.Tpr;
        var before = EoiSnapshot(m.Index == ApicReg.ToMsr(ApicReg.Eoi));
        var ok = _apic.TryWriteMsr(m.Index, m.Value, Now, out var effects);
        if (ok)
        {
            Apply(effects, eoiVector, tpr);
        }

        ObserveEoi(before);

        if (m.Reply)
        {
            // An IA32_APIC_BASE write answers with the register as the LAPIC now has it: the run
            // loop copies it into Cpu.ApicBase, which decodes the xAPIC page and CPUID.1:EDX.APIC.
            Sender.Tell(new RegisterAccessed(m.Index == Msr.ApicBase ? _apic.ApicBase : 0, !ok));
        }
    }

    /// <summary>
    /// kvm_set_cr8 → kvm_lapic_set_tpr: the guest's CR8 from an entry whose epoch is still
    /// current. A PPR drop that makes an IRQ deliverable needs EVENT (apic_update_ppr) and a kick
    /// (the vCPU may be halted waiting for exactly this).
    /// </summary>
    private void SetCr8(SetCr8 m)
    {
        if (m.Epoch != _tprEpoch)
        {
            return;
        }

        if (_apic.SetCr8(m.Cr8) || PriorityIgnoredEvent)
        {
            RaiseEvent();
        }
        else
        {
            Publish();
        }
    }

    /// <summary>Carries out a register write's effects (kvm_lapic_reg_write's callers).</summary>
    private void Apply(ApicWriteEffects effects, int eoiVector, byte tprBefore)
    {
        if (effects.ApicBaseChanged || _apic.Tpr != tprBefore)
        {
            // TPR changed on the LAPIC's side (a TPR write, or disabling the APIC reset it):
            // CR8 must show it from the next entry on.
            PublishTpr();
        }

        if (effects.Ipi is { } ipi)
        {
            if (_ctx.Trace.ApicIpi)
            {
                _ctx.Trace.KvmApicIpi(ipi.IcrLow, ipi.Destination);
            }

            if (ipi.Mode == DeliveryMode.Fixed)
            {
                _ctx.Counters.Add(ref _ctx.Counters.IpisSent);
                _ctx.Options.ApicEvents?.IpiSent(_ctx.Id, ipi);
            }

            // kvm_apic_send_ipi delivers to the sender itself synchronously (the write's own
            // vCPU waits for our reply), so a self-IPI is pending before the guest runs on; the
            // bus carries the message to every other LAPIC.
            // Lowest priority without shorthand is arbitrated by the bus among all matching
            // APICs, this one included: accepting it here as well would deliver it twice.
            var self = ipi.Shorthand switch
            {
                Shorthand.Self or Shorthand.AllIncludingSelf => true,
                Shorthand.AllExcludingSelf => false,
                _ => ipi.Mode != DeliveryMode.LowestPriority && _apic.MatchesDestination(ipi),
            };
            if (self)
            {
                Accept(ipi, matchDestination: false);
                if (ipi.Shorthand == Shorthand.Self && _ctx.Options.Faults?.DuplicateSelfIpi == true)
                {
                    Accept(ipi, matchDestination: false); // negative control: breaks I13 (exactly once)
                }
            }

            if (ipi.Shorthand != Shorthand.Self)
            {
                // Straight to the targets (no VM-actor hop); the reply to the writer follows these
                // Tells, so the guest's next IPI cannot overtake this one on the way to a target.
                if (_ctx.Bus is { } direct)
                {
                    direct.Send(ipi, self ? _ctx.Id : -1);
                }
                else
                {
                    _vm.Tell(new VmProtocol.SendIpi(ipi, SourceAccepted: self));
                }
            }
        }

        if (eoiVector >= 0 && effects.EventNeeded && _ctx.Trace.Eoi)
        {
            _ctx.Trace.KvmEoi(_apic.ApicId, eoiVector);
        }

        if (effects.LevelEoiVector is { } levelVector)
        {
            // kvm_ioapic_update_eoi, synchronously inside the EOI write as in KVM: the IOAPIC
            // clears remote IRR for the vector (and re-delivers a line still asserted) before the
            // vCPU re-enters, so the guest's next read of the redirection entry sees it cleared.
            // The IOAPIC is a locked device; a re-delivery leaves it as a message to the VM.
            _ctx.Machine.Platform?.IoApic.EndOfInterrupt(levelVector);
        }

        if (effects.TimerChanged)
        {
            ArmTimer();
        }

        // LINT0 switched to ExtINT (or the APIC was hardware-disabled) while the PIC may already be
        // asserting INTR: the run loop must look at the PIC again.
        if (effects.EventNeeded || (_apic.AcceptsPicInterrupts && !Shared.AcceptsPicInterrupts) || PriorityIgnoredEvent)
        {
            RaiseEvent();
        }
        else
        {
            Publish();
        }
    }

    /// <summary>
    /// Negative control (FaultInjection.IgnorePriority, breaks I11): apic_update_ppr asks for
    /// EVENT when an interrupt beats the new PPR; with PPR ignored, anything in IRR does, so a
    /// TPR raised over a pending vector still sends the run loop to acknowledge it.
    /// </summary>
    private bool PriorityIgnoredEvent => _ignorePriority && _apic.HighestIrr() >= 0;

    /// <summary>The LAPIC state before an EOI write, for the invariant checker (null when none is installed).</summary>
    private Stress.ApicSnapshot? EoiSnapshot(bool eoi) => eoi && _ctx.Options.Observer is not null ? Stress.ApicSnapshot.Of(_apic) : null;

    private void ObserveEoi(Stress.ApicSnapshot? before)
    {
        if (before is not null)
        {
            _ctx.Options.Observer!.EndOfInterrupt(_ctx.Id, before, Stress.ApicSnapshot.Of(_apic));
        }
    }

    /// <summary>Publish, KVM_REQ_EVENT, kick: the state changed so that the run loop must look at it again.</summary>
    private void RaiseEvent()
    {
        Publish();
        Shared.MakeRequest(KvmRequest.Event);
        Shared.Kick();
    }

    /// <summary>A new TPR epoch: the vCPU loads CR8 from it at its next entry; older guest CR8 writes are dropped.</summary>
    private void PublishTpr() => Shared.PublishTpr(++_tprEpoch, _apic.Cr8);

    /// <summary>apic_timer_expired + kvm_inject_apic_timer_irqs, collapsed: the model raises LVTT into IRR.</summary>
    private void Expire()
    {
        var expiries = _apic.TimerExpiries;
        var coalesced = _apic.TimerCoalesced;
        var raised = _apic.TimerExpired(Now);
        ArmTimer();
        Publish();

        // apic_timer_expired step 1: while the previous expiry is still pending (here: LVTT still
        // in IRR, which the previous expiry requested and kicked for) a new one only coalesces, with
        // no request and no kick. Kicking for it anyway costs a periodic timer a forced exit and a
        // run-loop turn per period while the guest is still working towards the pending IRQ, so a
        // late delivery makes every later one later (issue 4: 1,645 expiries, ~20 delivered).
        var counted = _apic.TimerExpiries - expiries;
        if (counted == 0 || _apic.TimerCoalesced - coalesced == counted)
        {
            return;
        }

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

    private void Publish()
    {
        var (ppr, deliverable) = (_apic.Ppr, _apic.HighestPendingDeliverable());
        if (deliverable < 0 && _ignorePriority)
        {
            // Negative control (FaultInjection.IgnorePriority, breaks I11): PPR masks nothing,
            // neither what is in IRR nor posted vectors (VcpuShared.InterruptPending).
            (ppr, deliverable) = (0, _apic.HighestIrr());
        }

        Shared.Ppr = ppr;
        Shared.HighestDeliverable = deliverable;
        Shared.AcceptsPicInterrupts = _apic.AcceptsPicInterrupts;

        // Timer expiries happen in Expire and also inside register writes (a TSC deadline already
        // in the past fires at once); every path publishes, so the statistic is taken here.
        var expiries = (long)_apic.TimerExpiries;
        if (expiries != _countedExpiries)
        {
            _ctx.Counters.Add(ref _ctx.Counters.TimerInterrupts, expiries - _countedExpiries);
            _countedExpiries = expiries;
            _ctx.Options.ApicEvents?.TimerFired(_ctx.Id);
        }
    }
}
