using ActorVm.Actors.Lapic;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware.Devices;
using ActorVm.Hardware.Exits;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.Event;
using static ActorVm.Actors.Vcpu.VcpuProtocol;

namespace ActorVm.Actors.RunLoop;

/// <summary>kvm_vcpu_arch.mp_state (spec §2).</summary>
public enum MpState
{
    Runnable = 0,
    Uninitialized = 1,
    InitReceived = 2,
    Halted = 3,
}

/// <summary>
/// The common x86 layer: <c>vcpu_run</c>, <c>vcpu_enter_guest</c> E1-E4 and E12,
/// <c>kvm_check_and_inject_events</c>, <c>vcpu_block</c> and the slowpath exit handlers
/// (spec §4-§6). Between guest entries the Cpu belongs to this actor; during an entry it belongs
/// to the VcpuActor, and the hand-over is the Run / VcpuExited message pair.
/// <para>
/// vcpu_run is a loop in KVM; here it is <see cref="Loop"/>, which runs synchronously until it
/// must wait for a message: the vCPU's exit, a LAPIC reply, or a wake-up. A blocked vCPU has no
/// thread at all: it is an idle actor waiting for <see cref="RunLoopProtocol.Wake"/>.
/// </para>
/// </summary>
public sealed partial class RunLoopActor : ReceiveActor
{
    /// <summary>The iteration waits for a message; the loop resumes when it arrives.</summary>
    private const int Suspended = int.MinValue;

    private readonly VcpuContext _ctx;
    private readonly IActorRef _vcpu;
    private readonly IActorRef _lapic;
    private readonly IActorRef _vm;
    private readonly Pic8259? _pic;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Func<VmExit, int>?[] _handlers = new Func<VmExit, int>?[VcpuCounters.ReasonSlots];

    private MpState _mp;
    private Phase _phase = Phase.Idle;
    private EventInjection? _exception;
    private EventInjection? _reinject;
    private int _nmiPending;
    private bool _irqWindow;
    private bool _nmiWindow;
    private EventInjection? _entryInjection;
    private bool _forceImmediateExit;
    private Action<LapicProtocol.RegisterAccessed>? _onRegister;
    private IActorRef? _pauseReplyTo;

    private enum Phase
    {
        Idle,
        InGuest,
        AwaitingAck,
        AwaitingApic,
        Blocked,
        Paused,
        Stopped,
    }

    public RunLoopActor(VcpuContext ctx, IActorRef vcpu, IActorRef lapic, IActorRef vm)
    {
        _ctx = ctx;
        _vcpu = vcpu;
        _lapic = lapic;
        _vm = vm;
        _pic = ctx.Id == 0 ? ctx.Machine.Platform?.Pic : null;
        _mp = ctx.Id == 0 ? MpState.Runnable : MpState.Uninitialized;
        RegisterHandlers();

        Receive<RunLoopProtocol.Start>(_ => Loop());
        Receive<VcpuExited>(OnExited);
        Receive<EntryCancelled>(OnCancelled);
        Receive<LapicProtocol.InterruptAcknowledged>(OnAcknowledged);
        Receive<LapicProtocol.RegisterAccessed>(OnRegisterAccessed);
        Receive<RunLoopProtocol.Wake>(_ => OnWake());
        Receive<RunLoopProtocol.Pause>(_ =>
        {
            _pauseReplyTo = Sender;
            Shared.SetSignal(true);
            if (_phase == Phase.Blocked)
            {
                OnWake();
            }
        });
        Receive<RunLoopProtocol.Resume>(_ =>
        {
            Shared.SetSignal(false);
            if (_phase == Phase.Paused)
            {
                _phase = Phase.Idle;
                Loop();
            }
        });
    }

    public static Props Props(VcpuContext ctx, IActorRef vcpu, IActorRef lapic, IActorRef vm) =>
        Akka.Actor.Props.Create(() => new RunLoopActor(ctx, vcpu, lapic, vm));

    private VcpuShared Shared => _ctx.Shared;

    private Cpu Cpu => _ctx.Cpu;

    private VcpuCounters Counters => _ctx.Counters;

    // ---- vcpu_run ------------------------------------------------------------------------------

    /// <summary>vcpu_run: enter the guest while runnable, else block; stop on r &lt;= 0.</summary>
    private void Loop()
    {
        while (true)
        {
            // KVM_REQ_VM_DEAD: every ioctl fails with -EIO from now on (a blocked vCPU would
            // otherwise spin through check_block, which it satisfies forever).
            if (Shared.TestRequest(KvmRequest.VmDead))
            {
                _phase = Phase.Stopped;
                return;
            }

            // Transfer work: a pending "signal" (pause/stop) leaves vcpu_run (-EINTR).
            if (Shared.SignalPending)
            {
                _phase = Phase.Paused;
                _pauseReplyTo?.Tell(new RunLoopProtocol.Paused(_ctx.Id));
                _pauseReplyTo = null;
                return;
            }

            var r = _mp == MpState.Runnable ? EnterGuest() : Block();
            if (r == Suspended)
            {
                return;
            }

            if (!Continue(r))
            {
                return;
            }
        }
    }

    /// <summary>The end of one vcpu_run iteration; false when the vCPU stops.</summary>
    private bool Continue(int r)
    {
        if (r <= 0)
        {
            _phase = Phase.Stopped;
            return false;
        }

        // vcpu_run step 3: kvm_clear_request(UNBLOCK). Step 4 (pending timer IRQs) happens in the
        // LAPIC actor, which raises LVTT into IRR as it expires (it alone owns the APIC state).
        if (Shared.CheckRequest(KvmRequest.Unblock))
        {
            Counters.CountRequest(KvmRequest.Unblock);
        }

        return true;
    }

    /// <summary>Re-enters <see cref="Loop"/> after a suspended iteration finished with <paramref name="r"/>.</summary>
    private void Resume(int r)
    {
        if (r == Suspended)
        {
            return;
        }

        _phase = Phase.Idle;
        if (Continue(r))
        {
            Loop();
        }
    }

    // ---- vcpu_enter_guest ---------------------------------------------------------------------

    private int EnterGuest()
    {
        _ctx.Options.Faults?.MaybeFail(Stress.FailingActor.RunLoop, _ctx.Id);

        // E1: requests, in the spec's order for those we model.
        if (Shared.RequestPending)
        {
            if (Check(KvmRequest.VmDead))
            {
                return -1;
            }

            if (Check(KvmRequest.ClockUpdate))
            {
                // kvm_guest_time_update: the TSC comes from the VM's clock; nothing to refresh.
            }

            if (Check(KvmRequest.TlbFlush))
            {
                Cpu.FlushTlb();
            }

            if (Check(KvmRequest.TripleFault))
            {
                Shutdown(VmExitKind.TripleFault, "triple fault (KVM_REQ_TRIPLE_FAULT)");
                return 0;
            }

            if (Check(KvmRequest.Nmi))
            {
                ProcessNmi();
            }
        }

        // The host's instruction limit (the synchronous Runner's RunLimits.MaxInstructions):
        // checked where KVM would notice a pending signal, before anything is injected.
        if (_ctx.RemainingInstructions == 0)
        {
            _phase = Phase.Stopped;
            _vm.Tell(new VmProtocol.StopVm(VmExitKind.InstructionLimit, 124,
                $"instruction limit of {_ctx.Options.MaxInstructions} reached at rip 0x{Cpu.Rip:x} (vCPU {_ctx.Id})"));
            return 0;
        }

        // E2: events.
        _entryInjection = null;
        _forceImmediateExit = false;
        if (Check(KvmRequest.Event))
        {
            AcceptEvents();
            if (_mp != MpState.Runnable)
            {
                return 1;
            }

            return CheckAndInjectEvents();
        }

        return Launch();
    }

    /// <summary>E4 onwards happen in the VcpuActor; the FORCE decision travels in run_flags.</summary>
    private int Launch()
    {
        _phase = Phase.InGuest;
        if (_entryInjection is { } loaded)
        {
            _ctx.Options.Observer?.Injected(_ctx.Id, loaded, reinjected: false);
        }

        var flags = _forceImmediateExit ? RunFlags.ForceImmediateExit : RunFlags.None;
        _vcpu.Tell(new Run(flags, _entryInjection, _irqWindow, _nmiWindow));
        return Suspended;
    }

    private bool Check(int bit)
    {
        if (!Shared.CheckRequest(bit))
        {
            return false;
        }

        Counters.CountRequest(bit);
        _ctx.Options.Observer?.RequestServiced(_ctx.Id, bit);
        return true;
    }

    /// <summary>process_nmi: nmi_pending += nmi_queued, at most 2 (1 if NMIs are blocked); EVENT if any.</summary>
    private void ProcessNmi()
    {
        var limit = Cpu.NmiBlocked ? 1 : 2;
        _nmiPending = Math.Min(_nmiPending + Shared.TakeQueuedNmis(), limit);
        if (_nmiPending > 0)
        {
            Shared.MakeRequest(KvmRequest.Event);
        }
    }

    /// <summary>
    /// kvm_apic_accept_events: INIT resets the vCPU (BSP → RUNNABLE, AP → INIT_RECEIVED); SIPI
    /// starts an AP in INIT_RECEIVED at CS = vector &lt;&lt; 8, IP = 0 and is dropped otherwise.
    /// </summary>
    private void AcceptEvents()
    {
        if (Shared.ApicEvents == 0)
        {
            return;
        }

        var events = Shared.TakeApicEvents(out var sipiVector);
        var (mpBefore, csBefore, ripBefore) = (_mp, Cpu.Seg[(int)SegReg.CS].Selector, Cpu.Rip);
        if ((events & VcpuShared.ApicInit) != 0)
        {
            var bsp = _ctx.Id == 0;
            var apicBase = Cpu.ApicBase; // INIT keeps IA32_APIC_BASE (SDM 11.12.5.1)
            Cpu.Reset(bsp);
            Cpu.ApicBase = apicBase;
            _nmiPending = 0;
            _exception = null;
            _reinject = null;
            _irqWindow = _nmiWindow = false;
            _mp = bsp ? MpState.Runnable : MpState.InitReceived;
        }

        // A SIPI outside INIT_RECEIVED is dropped (SDM 9.4.4); the negative control
        // FaultInjection.AcceptStraySipi honours it anyway, breaking I14.
        if ((events & VcpuShared.ApicSipi) != 0 && (_mp == MpState.InitReceived || _ctx.Options.Faults?.AcceptStraySipi == true))
        {
            Cpu.Seg[(int)SegReg.CS] = Segment.Real((ushort)(sipiVector << 8), 0x9B);
            Cpu.Rip = 0;
            Cpu.Halted = false; // only a stray start (negative control) can find the AP in HLT
            Cpu.UpdateMode();
            _mp = MpState.Runnable;
        }

        _ctx.Options.Observer?.ApicEventsAccepted(_ctx.Id, new ApicEventsTaken(events, sipiVector, mpBefore, _mp, csBefore, ripBefore));
    }

    // ---- kvm_check_and_inject_events (spec §5) --------------------------------------------------

    private bool _canInject;

    private int CheckAndInjectEvents()
    {
        // 2. Re-inject what a cancelled entry had loaded (vmx_cancel_injection → complete_interrupts).
        //    A pending exception suppresses re-injecting an NMI/IRQ: that one stays queued.
        var needsReinjection = _reinject is not null;
        if (_reinject is { } again && (IsException(again) || _exception is null))
        {
            _reinject = null;
            _entryInjection = again;
            if (again.Type == EventType.ExternalInterrupt && _ctx.Trace.InjVirq)
            {
                _ctx.Trace.KvmInjVirq(again.Vector, soft: false, reinjected: true);
            }
        }

        // 4. can_inject = !kvm_event_needs_reinjection.
        _canInject = !needsReinjection;

        // 5. A pending exception is injected (clearing can_inject), unless an exception is being re-injected.
        if (_exception is { } ex && _entryInjection is null)
        {
            _exception = null;
            _entryInjection = ex;
            _canInject = false;
            Counters.Add(ref Counters.InjectedExceptions);
            if (_reinject is not null)
            {
                Shared.MakeRequest(KvmRequest.Event); // the suppressed NMI/IRQ re-injection comes next
            }
        }

        // 6. NMI.
        if (_nmiPending > 0)
        {
            if (!_canInject)
            {
                return Busy();
            }

            if (NmiAllowed)
            {
                _nmiPending--;
                _entryInjection = new EventInjection(2, EventType.Nmi);
                _canInject = false;
                Counters.Add(ref Counters.InjectedNmis);
            }

            if (_nmiPending > 0)
            {
                _nmiWindow = true;
            }
        }

        // 6. IRQ: kvm_cpu_has_injectable_intr. ExtINT first, as kvm_cpu_get_interrupt asks the PIC
        //    before the LAPIC: the vector comes from the 8259's INTA cycle (kvm_cpu_get_extint →
        //    kvm_pic_read_irq), synchronously under the PIC's lock, with no LAPIC round trip.
        if (HasExtInt)
        {
            if (!_canInject)
            {
                return Busy();
            }

            if (InterruptAllowed)
            {
                var vector = _pic!.Acknowledge();
                _entryInjection = new EventInjection(vector, EventType.ExternalInterrupt);
                _canInject = false;
                Counters.Add(ref Counters.InjectedIrqs);
                if (_ctx.Trace.InjVirq)
                {
                    _ctx.Trace.KvmInjVirq(vector, soft: false, reinjected: false);
                }

                // The PIC may still assert INTR (another line) or the LAPIC hold a vector: open the window.
                if (HasExtInt || Shared.InterruptPending)
                {
                    _irqWindow = true;
                }

                return FinishInjection();
            }

            _irqWindow = true;
        }

        if (Shared.InterruptPending)
        {
            if (!_canInject)
            {
                return Busy();
            }

            if (InterruptAllowed)
            {
                // kvm_cpu_get_interrupt: the LAPIC merges what is posted, acknowledges (IRR→ISR)
                // and replies; the vector may be -1 if a posted one turned out to be masked.
                _phase = Phase.AwaitingAck;
                _lapic.Tell(LapicProtocol.AcknowledgeInterrupt.Instance);
                return Suspended;
            }

            _irqWindow = true;
        }

        return FinishInjection();
    }

    private void OnAcknowledged(LapicProtocol.InterruptAcknowledged ack)
    {
        if (_phase != Phase.AwaitingAck)
        {
            return;
        }

        if (ack.Vector >= 0)
        {
            _entryInjection = new EventInjection((byte)ack.Vector, EventType.ExternalInterrupt);
            _canInject = false;
            Counters.Add(ref Counters.InjectedIrqs);
            if (_ctx.Trace.InjVirq)
            {
                _ctx.Trace.KvmInjVirq((byte)ack.Vector, soft: false, reinjected: false);
            }
        }

        if (ack.NextPending >= 0)
        {
            _irqWindow = true;
        }

        Resume(FinishInjection());
    }

    private int FinishInjection()
    {
        // 7. A pending nested event forces an immediate exit.
        if (Shared.L2Active && Shared.NestedEventPending)
        {
            _forceImmediateExit = true;
        }

        return Launch();
    }

    /// <summary>8. out: r == -EBUSY → req_immediate_exit: enter, deliver what is loaded, exit at once, re-evaluate.</summary>
    private int Busy()
    {
        _forceImmediateExit = true;
        return Launch();
    }

    private static bool IsException(EventInjection e) =>
        e.Type is EventType.HardwareException or EventType.SoftwareException or EventType.PrivilegedSoftwareException or EventType.SoftwareInterrupt;

    /// <summary>vmx_nmi_allowed: not blocked by NMI, STI or MOV SS.</summary>
    private bool NmiAllowed => !Cpu.NmiBlocked && !Cpu.InterruptShadow;

    /// <summary>
    /// kvm_cpu_has_extint: the PIC asserts INTR and this CPU's APIC takes it (hardware-disabled, or
    /// LINT0 unmasked in ExtINT mode). Only the BSP is wired to the PIC.
    /// </summary>
    private bool HasExtInt => _pic is { Intr: true } && Shared.AcceptsPicInterrupts;

    /// <summary>vmx_interrupt_allowed: RFLAGS.IF and no STI/MOV-SS shadow.</summary>
    private bool InterruptAllowed => Cpu.IF && !Cpu.InterruptShadow;

    // ---- E7 cancel, E12 exits ----------------------------------------------------------------

    private void OnCancelled(EntryCancelled cancelled)
    {
        if (_phase != Phase.InGuest)
        {
            return;
        }

        // cancel_injection: re-make EVENT for a forced entry (I5), put the loaded event back.
        if (cancelled.Forced)
        {
            Shared.MakeRequest(KvmRequest.Event);
        }

        if (cancelled.Injection is { } loaded)
        {
            _reinject = loaded;
            Shared.MakeRequest(KvmRequest.Event);
        }

        Resume(1);
    }

    private void OnExited(VcpuExited exited)
    {
        if (_phase != Phase.InGuest)
        {
            return;
        }

        _phase = Phase.Idle;
        var r = exited.Fastpath != FastpathResult.None ? 1 : HandleExit(exited.Exit);
        NoteHalt();
        Resume(r);
    }

    /// <summary>kvm_emulate_halt: a retired HLT (fastpath or slowpath) makes mp_state HALTED.</summary>
    private void NoteHalt()
    {
        if (Cpu.Halted && _mp == MpState.Runnable)
        {
            _mp = MpState.Halted;
        }
    }

    /// <summary>__vmx_handle_exit with fp == NONE: the one table indexed by exit reason.</summary>
    private int HandleExit(VmExit exit)
    {
        Counters.CountSlowpath(exit.Reason);
        var slot = (int)exit.Reason;
        if (slot < _handlers.Length && _handlers[slot] is { } handler)
        {
            return handler(exit);
        }

        // unexpected_vmexit: log, count, end the VM with a clear error.
        Counters.Add(ref Counters.UnhandledExits);
        var detail = $"vCPU {_ctx.Id}: unexpected VM-exit {exit.Reason.TraceName()} ({(int)exit.Reason}) at rip 0x{Cpu.Rip:x}, qualification 0x{exit.Qualification:x}";
        _log.Error(detail);
        _vm.Tell(new VmProtocol.VcpuFailed(_ctx.Id, detail));
        return 0;
    }

    /// <summary>Handles the exit that completing an instruction ran into, if any.</summary>
    private int Then(VmExit? next)
    {
        if (next is not { } n)
        {
            return 1;
        }

        Counters.CountExit(n.Reason);
        return HandleExit(n);
    }

    /// <summary>A LAPIC register access: ask, and finish the instruction when the reply comes.</summary>
    private int AskLapic(object request, Action<LapicProtocol.RegisterAccessed> onReply)
    {
        _phase = Phase.AwaitingApic;
        _onRegister = onReply;
        _lapic.Tell(request);
        return Suspended;
    }

    private void OnRegisterAccessed(LapicProtocol.RegisterAccessed reply)
    {
        if (_phase != Phase.AwaitingApic || _onRegister is not { } onReply)
        {
            return;
        }

        _onRegister = null;
        _phase = Phase.Idle;
        onReply(reply);
    }

    /// <summary>kvm_queue_exception: injected at the next entry (the instruction was abandoned).</summary>
    private void QueueException(EventInjection exception)
    {
        _exception = exception;
        Shared.MakeRequest(KvmRequest.Event);
    }

    private void Shutdown(VmExitKind kind, string detail)
    {
        _phase = Phase.Stopped;
        _vm.Tell(new VmProtocol.VcpuShutdown(_ctx.Id, kind, detail));
    }

    // ---- vcpu_block (spec §4) ---------------------------------------------------------------

    private int Block()
    {
        if (!Runnable())
        {
            if (_mp == MpState.Halted)
            {
                Counters.Add(ref Counters.Halts);
            }

            // The hv timer only ticks in the guest: move the LAPIC timer to the host timer.
            _lapic.Tell(new LapicProtocol.SwitchTimer(Hv: false));

            // prepare_to_rcuwait + set_current_state, then the final kvm_vcpu_check_block: a kick
            // after this point sees Blocked and sends Wake; one before it is seen by the check.
            Shared.EnterBlocked();
            _ctx.Options.Faults?.Delay();
            if (!CheckBlock())
            {
                _phase = Phase.Blocked;
                _ctx.Options.Observer?.BlockChanged(_ctx.Id, blocked: true);
                return Suspended;
            }

            Unblocked();
        }

        return AfterBlock();
    }

    private void OnWake()
    {
        Shared.WakeConsumed();
        if (_phase != Phase.Blocked || !CheckBlock())
        {
            return;
        }

        Counters.Add(ref Counters.Wakeups);
        _ctx.Options.Observer?.BlockChanged(_ctx.Id, blocked: false);
        Unblocked();
        _phase = Phase.Idle;
        Resume(AfterBlock());
    }

    private void Unblocked()
    {
        Shared.LeaveBlocked();
        _lapic.Tell(new LapicProtocol.SwitchTimer(Hv: true));
    }

    /// <summary>vcpu_block after the wait: still not runnable → 1; else accept events, HALTED → RUNNABLE.</summary>
    private int AfterBlock()
    {
        if (!Runnable())
        {
            return 1;
        }

        AcceptEvents();
        if (_mp == MpState.Halted)
        {
            _mp = MpState.Runnable;
            Cpu.Halted = false;
        }

        return 1;
    }

    /// <summary>kvm_vcpu_check_block: runnable, UNBLOCK, or a pending signal.</summary>
    private bool CheckBlock()
    {
        if (Runnable() || Shared.SignalPending || Shared.TestRequest(KvmRequest.VmDead))
        {
            return true;
        }

        if (Check(KvmRequest.Unblock))
        {
            return true;
        }

        return false;
    }

    /// <summary>kvm_arch_vcpu_runnable.</summary>
    private bool Runnable() => _mp == MpState.Runnable || HasEvents();

    /// <summary>
    /// kvm_vcpu_has_events: INIT/SIPI pending, an exception, a requested or allowed NMI, an
    /// injectable IRQ only if interrupts are allowed (so HLT with IF=0 ignores fixed IRQs, I12),
    /// a nested event. A queued NMI counts once KVM_REQ_NMI is made (spec §3), not from
    /// nmi_queued alone: before the request E1 would not process it, and a halted vCPU woken
    /// then would run on past HLT without the NMI (the request and its kick wake it anyway).
    /// </summary>
    private bool HasEvents() =>
        Shared.ApicEvents != 0
        || _exception is not null
        || Shared.TestRequest(KvmRequest.Nmi)
        || (_nmiPending > 0 && NmiAllowed)
        || (InterruptAllowed && (Shared.InterruptPending || HasExtInt))
        || (Shared.L2Active && Shared.NestedEventPending);
}
