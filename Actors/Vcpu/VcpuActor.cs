using ActorVm.Actors.Lapic;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vm;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using Akka.Actor;
using static ActorVm.Actors.Vcpu.VcpuProtocol;

namespace ActorVm.Actors.Vcpu;

/// <summary>
/// The vendor layer: KVM's <c>vmx_vcpu_run</c> plus the inner loop E5-E10 of
/// <c>vcpu_enter_guest</c> (spec §4, §7). It is the only writer of OUTSIDE→IN (E5) and of
/// IN/EXITING→OUTSIDE (E7, E11) for its vCPU (I3); everyone else may only CAS IN→EXITING.
/// Each guest slice is bounded by <see cref="VmOptions.SliceInstructions"/>. Fastpath re-entries
/// loop inside the actor's turn as KVM's inner loop does (E10), up to
/// <see cref="MaxInlineReentries"/> entries or a slice's worth of instructions; then the turn
/// ends with a <see cref="VcpuProtocol.Reenter"/> to itself, so many vCPUs share few threads.
/// </summary>
public sealed class VcpuActor : ReceiveActor
{
    /// <summary>vmx_update_hv_timer writes 0xFFFFFFFF when soft-disabling; the timer counts at TSC &gt;&gt; 5 (IA32_VMX_MISC[4:0] = 5).</summary>
    public const ulong SoftDisabledSpan = 0xFFFFFFFFUL << 5;

    /// <summary>
    /// Fastpath re-entries in one actor turn before it yields through the mailbox: the other
    /// actors on the vCPU dispatcher get the thread, as a host tick would let the scheduler run.
    /// A turn also yields after <see cref="VmOptions.SliceInstructions"/> retired instructions.
    /// </summary>
    public const int MaxInlineReentries = 256;

    private readonly VcpuContext _ctx;
    private readonly IActorRef _lapic;
    private readonly ApicBus? _bus;
    private IActorRef _runLoop = ActorRefs.Nobody;

    private RunFlags _flags;
    private EventInjection? _injection;
    private bool _irqWindow;
    private bool _nmiWindow;
    private bool _reentry;
    private bool _softDisabled;

    /// <summary>The soft-disabled deadline programmed in this actor turn (0: none yet; see <see cref="ProgramPreemptionTimer"/>).</summary>
    private ulong _softDeadline;
    private ulong _hvProgrammed = VcpuShared.NoDeadline;
    private VmExit _lastExit;
    private bool _awaitingLapic;
    private int _pendingLapicReplies;
    private long _requestsAtCheck;
    private int _modeAtCheck;

    public VcpuActor(VcpuContext ctx, IActorRef lapic)
    {
        _ctx = ctx;
        _lapic = lapic;
        _bus = ctx.Bus;
        Receive<Run>(OnRun);
        Receive<Reenter>(_ => OnReenter());
        Receive<LapicProtocol.RegisterAccessed>(_ =>
        {
            // The LAPIC has applied the fastpath write (IRR, request and kick already done), so
            // the E10 re-check sees what it caused, as when KVM delivers the ICR write synchronously.
            if (--_pendingLapicReplies == 0 && _awaitingLapic)
            {
                _awaitingLapic = false;
                OnReenter();
            }
        });
    }

    public static Props Props(VcpuContext ctx, IActorRef lapic) => Akka.Actor.Props.Create(() => new VcpuActor(ctx, lapic));

    /// <summary>True while vmx_update_hv_timer has the timer soft-disabled (for tests).</summary>
    internal bool SoftDisabled => _softDisabled;

    private VcpuShared Shared => _ctx.Shared;

    private void OnRun(Run run)
    {
        _runLoop = Sender;
        _ctx.Options.Faults?.MaybeFail(Stress.FailingActor.Vcpu, _ctx.Id);

        // E5: store-release IN_GUEST_MODE, then a full barrier so the re-check below cannot be
        // reordered before it (pairs with the barrier in make_request + kick).
        Shared.Mode.Set(ModeWord.InGuestMode);
        Interlocked.MemoryBarrier();
        _ctx.Options.Faults?.Delay();

        // E7: kvm_vcpu_exit_request. Any request or EXITING refuses the entry (I2).
        _requestsAtCheck = Shared.Requests;
        _modeAtCheck = Shared.Mode.Read();
        if (Shared.ExitRequest && _ctx.Options.Faults?.SkipEntryRecheck != true)
        {
            Shared.Mode.Set(ModeWord.OutsideGuestMode);
            VcpuCounters.AddOwn(ref _ctx.Counters.EntriesCancelled);
            _ctx.Options.Observer?.EntryCancelled(_ctx.Id, _requestsAtCheck, _modeAtCheck);
            _runLoop.Tell(new EntryCancelled(run.Force, run.Injection));
            return;
        }

        // E8: force_immediate_exit → FORCE flag and KVM_REQ_EVENT, after E7 so it cannot cancel
        // this entry; it does make the E10 re-check fail, so the inner loop enters once (I5, I7).
        _flags = run.Force ? RunFlags.ForceImmediateExit : RunFlags.None;
        if (run.Force)
        {
            Shared.MakeRequest(KvmRequest.Event);
        }

        _injection = run.Injection;
        _irqWindow = run.InterruptWindow;
        _nmiWindow = run.NmiWindow;
        _reentry = false;
        InnerLoop();
    }

    private void OnReenter()
    {
        // E10 step 4, repeated after the mailbox turn: an exit request ends the inner loop.
        _requestsAtCheck = Shared.Requests;
        _modeAtCheck = Shared.Mode.Read();
        if (Shared.ExitRequest && _ctx.Options.Faults?.SkipEntryRecheck != true)
        {
            LeaveGuest(_lastExit, FastpathResult.ExitHandled, forced: false);
            return;
        }

        InnerLoop();
    }

    /// <summary>
    /// E10: vmx_vcpu_run, and while the fastpath says REENTER_GUEST and no exit request is
    /// pending, again, without leaving the actor's turn (mode stays IN throughout, as in KVM).
    /// Bounded: after <see cref="MaxInlineReentries"/> entries or a slice's worth of
    /// instructions the turn ends and the loop continues from the mailbox (<see cref="Reenter"/>).
    /// </summary>
    private void InnerLoop()
    {
        _softDeadline = 0; // a new turn programs the soft-disabled span afresh
        var retired = 0L;
        for (var entries = 1; ; entries++)
        {
            var exit = EnterOnce(out var fp);
            retired += exit.InstructionsRetired;
            if (fp != FastpathResult.ReenterGuest)
            {
                LeaveGuest(exit, fp, (_flags & RunFlags.ForceImmediateExit) != 0);
                return;
            }

            // E10 step 4: re-check before re-entering; run_flags are cleared for the next entry.
            _requestsAtCheck = Shared.Requests;
            _modeAtCheck = Shared.Mode.Read();
            if (Shared.ExitRequest && _ctx.Options.Faults?.SkipEntryRecheck != true)
            {
                LeaveGuest(exit, FastpathResult.ExitHandled, (_flags & RunFlags.ForceImmediateExit) != 0);
                return;
            }

            _flags = RunFlags.None;
            _reentry = true;
            if (_pendingLapicReplies > 0)
            {
                _awaitingLapic = true; // OnReenter when the LAPIC has applied the write
                return;
            }

            if (entries >= MaxInlineReentries || retired >= _ctx.Options.SliceInstructions)
            {
                Self.Tell(Reenter.Instance);
                return;
            }
        }
    }

    /// <summary>One vmx_vcpu_run, with its fastpath verdict.</summary>
    private VmExit EnterOnce(out FastpathResult fp)
    {
        var cpu = _ctx.Cpu;
        var counters = _ctx.Counters;
        var force = (_flags & RunFlags.ForceImmediateExit) != 0;
        var method = _ctx.Options.ImmediateExit;
        if (_ctx.Trace.Entry)
        {
            _ctx.Trace.KvmEntry(_ctx.Id, cpu.Rip, force);
        }

        VcpuCounters.AddOwn(ref counters.Entries);
        if (force && _reentry)
        {
            VcpuCounters.AddOwn(ref counters.SecondForcedEntryInInnerLoop);
        }

        var deadline = ProgramPreemptionTimer(force, out var deadlineKept);
        if (force && method == ImmediateExitMethod.SelfIpi)
        {
            SendSelfIpi();
        }

        _ctx.Options.Observer?.InterruptWindowAtEntry(_ctx.Id, _irqWindow, _injection, force);
        _ctx.Options.Observer?.Entry(_ctx.Id, _requestsAtCheck, _modeAtCheck, force, _reentry);
        var budget = Math.Min(_ctx.Options.SliceInstructions, _ctx.RemainingInstructions);
        var tpr = Shared.Tpr;
        cpu.Cr8 = VcpuShared.Cr8Of(tpr);
        var exit = cpu.Run(new VmEntry(deadline, _injection, _irqWindow, _nmiWindow, budget, DeadlineKnownFar: deadlineKept));
        if (cpu.SliceDeadlineTsc != deadline)
        {
            // The slice adopted a deadline the LAPIC published after this entry began: the
            // preemption timer was armed with it, so its expiry is the LAPIC's, not spurious.
            _softDisabled = false;
            _hvProgrammed = cpu.SliceDeadlineTsc;
        }

        SyncCr8ToLapic(tpr);
        _injection = null;
        VcpuCounters.AddOwn(ref counters.InstructionsRetired, exit.InstructionsRetired);
        counters.CountExit(exit.Reason);
        if (force)
        {
            counters.CountForced(method, exit.InstructionsRetired);
        }

        if (_ctx.Trace.Exit)
        {
            _ctx.Trace.KvmExit(_ctx.Id, exit, cpu.Rip);
        }

        fp = Fastpath(ref exit, force);
        _lastExit = exit;
        _ctx.Options.Observer?.Exit(_ctx.Id, exit, fp, force);
        return exit;
    }

    /// <summary>
    /// sync_cr8_to_lapic (SVM without the CR8-write intercept): MOV CR8 changes the guest's TPR
    /// shadow without an exit; after the exit a changed value goes to the LAPIC, whose PPR then
    /// follows (kvm_set_cr8 → kvm_lapic_set_tpr, which makes EVENT if an IRQ became deliverable).
    /// Published first, so the next entry loads it even before the LAPIC has the message. The
    /// load half (sync_lapic_to_cr8) is the <c>cpu.Cr8 = ...</c> before every entry.
    /// </summary>
    private void SyncCr8ToLapic(long loaded)
    {
        var cr8 = _ctx.Cpu.Cr8;
        if (cr8 != VcpuShared.Cr8Of(loaded) && Shared.TryStoreGuestCr8(loaded, cr8))
        {
            _lapic.Tell(new LapicProtocol.SetCr8(cr8, VcpuShared.EpochOf(loaded)));
        }
    }

    /// <summary>E11: OUTSIDE_GUEST_MODE, then the run loop handles the exit (E12).</summary>
    private void LeaveGuest(VmExit exit, FastpathResult fp, bool forced)
    {
        Shared.Mode.Set(ModeWord.OutsideGuestMode);
        _runLoop.Tell(new VcpuExited(exit, fp, forced));
    }

    /// <summary>
    /// vmx_update_hv_timer(force): 0 when forced; the LAPIC's hv deadline when offloaded;
    /// otherwise soft-disabled, armed at 0xFFFFFFFF (scaled) so a spurious expiry stays possible.
    /// Without the preemption timer (self-IPI method) there is no deadline at all.
    /// <paramref name="kept"/>: the soft-disabled deadline programmed earlier in this turn stays.
    /// </summary>
    private ulong ProgramPreemptionTimer(bool force, out bool kept)
    {
        kept = false;
        if (_ctx.Options.ImmediateExit != ImmediateExitMethod.PreemptionTimer)
        {
            _ctx.Cpu.PublishedDeadline = null;
            return ulong.MaxValue;
        }

        // The LAPIC actor may arm the hv timer after this entry (a TSC_DEADLINE write whose reply
        // raced the E10 re-check, the switch back from the sw timer after a wake-up): the slice
        // polls the published word at its deadline checks, where KVM would have programmed the
        // preemption timer synchronously before re-entering (handle_fastpath_set_tscdeadline).
        _ctx.Cpu.PublishedDeadline = Shared.HvDeadlineWord;
        _hvProgrammed = VcpuShared.NoDeadline;
        if (force)
        {
            _softDisabled = false;
            return 0;
        }

        var hv = Shared.HvDeadline;
        if (hv != VcpuShared.NoDeadline)
        {
            _softDisabled = false;
            _hvProgrammed = hv;
            return hv == 0 ? 1 : hv; // 0 would mean "forced"; an already-due deadline still exits at once
        }

        // vmx_update_hv_timer writes the -1 value only when the timer is not soft-disabled yet; the
        // VMCS keeps it for the following entries. Likewise an entry that stays soft-disabled keeps
        // the deadline programmed earlier in this turn instead of reading the clock again (one
        // clock_gettime per fastpath re-entry instead of two). A turn lasts milliseconds, far
        // below SoftDisabledSpan, and an expiry resets it (PreemptionTimerFastpath rule 1), so the
        // spurious expiry stays as far away as KVM's. For the same reason a kept deadline is known
        // not to be due, as KVM's timer keeps counting down from the value written then: the
        // slice need not read the clock before its first block either (VmEntry.DeadlineKnownFar).
        kept = _softDisabled && _softDeadline != 0;
        if (!kept)
        {
            _softDeadline = _ctx.Cpu.Clock.ReadTsc() + SoftDisabledSpan;
        }

        _softDisabled = true;
        return _softDeadline;
    }

    /// <summary>
    /// smp_send_reschedule(self) with IRQs off: the IPI is already in flight when the guest starts.
    /// Here another thread performs the kick's CAS IN→EXITING, so some guest instructions may
    /// retire first; the statistics' leak histogram measures how many.
    /// </summary>
    private void SendSelfIpi() =>
        ThreadPool.UnsafeQueueUserWorkItem(static mode => mode.TryExit(), Shared.Mode, preferLocal: false);

    /// <summary>vmx_exit_handlers_fastpath(force). May replace <paramref name="exit"/> when completing an instruction ran into another exit.</summary>
    private FastpathResult Fastpath(ref VmExit exit, bool force)
    {
        if (Shared.L2Active && exit.Reason != ExitReason.PreemptionTimer)
        {
            return FastpathResult.None;
        }

        switch (exit.Reason)
        {
            case ExitReason.PreemptionTimer:
                return Count(FastpathHandler.PreemptionTimer, PreemptionTimerFastpath(force));
            case ExitReason.MsrWrite:
                return MsrWriteFastpath(exit);
            case ExitReason.Hlt:
                return Count(FastpathHandler.Hlt, HltFastpath(ref exit));
            default:
                return FastpathResult.None;
        }
    }

    private FastpathResult Count(FastpathHandler handler, FastpathResult result)
    {
        _ctx.Counters.CountFastpath(handler, result);
        return result;
    }

    /// <summary>handle_fastpath_preemption_timer, in the order of Linux 6.9 ([S2]).</summary>
    private FastpathResult PreemptionTimerFastpath(bool force)
    {
        // 1. A soft-disabled timer's expiry is spurious: nothing to do. The VMCS reloads the -1
        //    value at the next entry, so that entry programs a whole span again.
        if (_softDisabled)
        {
            _softDeadline = 0;
            return FastpathResult.ReenterGuest;
        }

        // 2. A forced immediate exit has nothing to emulate, for L1 and L2 alike (I6).
        if (force)
        {
            return FastpathResult.ExitHandled;
        }

        // 3. With L2 active, emulating the guest's timer may need a nested VM-exit: slowpath.
        if (Shared.L2Active)
        {
            return FastpathResult.None;
        }

        // 4. kvm_lapic_expired_hv_timer: cancel the hv deadline and expire it into the LAPIC.
        if (_hvProgrammed != VcpuShared.NoDeadline && Shared.TryCancelHvDeadline(_hvProgrammed))
        {
            _lapic.Tell(new LapicProtocol.HvTimerExpired(_hvProgrammed));
        }

        return FastpathResult.ReenterGuest;
    }

    /// <summary>handle_fastpath_set_msr_irqoff: x2APIC ICR (x2APIC mode only) and TSC_DEADLINE (hv timer usable).</summary>
    private FastpathResult MsrWriteFastpath(in VmExit exit)
    {
        var cpu = _ctx.Cpu;
        var index = (uint)exit.Qualification; // ECX
        FastpathHandler handler;
        var value = exit.Value; // EDX:EAX
        if (index == Msr.X2ApicIcr && (cpu.ApicBase & MsrApicBase.X2Apic) != 0 && (value & 0xFFF3_2000UL) == 0)
        {
            // Reserved ICR bits (31:20, 17:16, 13) #GP: leave those to the slowpath.
            handler = FastpathHandler.X2ApicIcr;
        }
        else if (index == Msr.TscDeadline && _ctx.Options.EffectiveTimer == TimerBackend.Hv)
        {
            handler = FastpathHandler.TscDeadline;
        }
        else
        {
            return FastpathResult.None;
        }

        if (handler == FastpathHandler.X2ApicIcr && _bus is { } bus && SendIpiDirect(bus, value))
        {
            // Nothing for the sender's LAPIC to apply before the guest runs on: re-enter at once.
        }
        else
        {
            // The write goes to the LAPIC, and the inner loop re-enters only after its reply: mode
            // stays IN meanwhile (as in KVM's fastpath), so a kick is still seen by the E10
            // re-check, and a self-IPI is pending in IRR before the next guest instruction.
            _lapic.Tell(new LapicProtocol.WriteMsr(index, value, Reply: true));
            _pendingLapicReplies++;
        }

        // The write is applied: the WRMSR retires without a replay (kvm_skip_emulated_instruction).
        cpu.SkipPendingInstruction();
        return Count(handler, FastpathResult.ReenterGuest);
    }

    /// <summary>
    /// kvm_x2apic_icr_write → kvm_apic_send_ipi from the sender's vCPU, when the IPI cannot reach
    /// its own LAPIC (<see cref="ApicBus.MayReachSource"/>): the ICR value is posted for the LAPIC
    /// (it only stores it), the IPI is traced and counted as the LAPIC would, and the bus carries
    /// it to the targets, which accept it in __apic_accept_irq's order (IRR, request, kick).
    /// False when the write has a local effect: the LAPIC must apply it synchronously.
    /// </summary>
    private bool SendIpiDirect(ApicBus bus, ulong value)
    {
        var ipi = LocalApic.DecodeIcr((uint)value, (uint)(value >> 32), x2ApicFormat: true, _ctx.Id);
        if (ApicBus.MayReachSource(ipi, _ctx.Id))
        {
            return false;
        }

        Shared.PostIcr(value);
        if (_ctx.Trace.ApicIpi)
        {
            _ctx.Trace.KvmApicIpi(ipi.IcrLow, ipi.Destination);
        }

        if (ipi.Mode == DeliveryMode.Fixed)
        {
            _ctx.Counters.Add(ref _ctx.Counters.IpisSent);
            _ctx.Options.ApicEvents?.IpiSent(_ctx.Id, ipi);
        }

        bus.Send(ipi, skip: _ctx.Id); // it cannot match: no need to offer it
        return true;
    }

    /// <summary>
    /// handle_fastpath_hlt (6.12+): emulate the halt; re-enter if an event is already there.
    /// Re-entering delivers nothing by itself: the event is accepted or injected by the run loop,
    /// which the E10 re-check reaches because the sender's request (EVENT, NMI) is pending. So a
    /// HLT may end here only for an event whose request is visible, else the guest would run on
    /// past HLT with the event undelivered, once per HLT, for as long as the request is late.
    /// </summary>
    private FastpathResult HltFastpath(ref VmExit exit)
    {
        var cpu = _ctx.Cpu;
        if (cpu.Complete() is { } next)
        {
            exit = next;
            return FastpathResult.None;
        }

        // A pending INIT/SIPI counts for kvm_vcpu_has_events, but only kvm_apic_accept_events
        // takes it, in the run loop: keep the vCPU halted and let vcpu_block accept it (it does
        // without waiting for KVM_REQ_EVENT). __apic_accept_irq makes EVENT right after setting
        // pending_events; our LAPIC actor resets itself between the two, and a preempted host
        // thread can stretch that to milliseconds, in which each re-entry would end one more HLT
        // with IF=0 (the sipi-race storm's I12 ledger error under load). When EVENT is already
        // pending the guest sees the same either way: the event is accepted before it runs on.
        if (Shared.ApicEvents != 0)
        {
            return FastpathResult.ExitHandled;
        }

        if (HasEvents())
        {
            cpu.Halted = false;
            return FastpathResult.ReenterGuest;
        }

        return FastpathResult.ExitHandled;
    }

    /// <summary>
    /// kvm_vcpu_has_events as far as the vendor layer can see it from shared state, past the
    /// pending INIT/SIPI that <see cref="HltFastpath"/> has already sent to vcpu_block: a
    /// requested NMI, an injectable IRQ with interrupts allowed. Exceptions and already-pending
    /// NMIs are the run loop's and were injected before this entry. Like KVM (spec §3: REQ_NMI or
    /// nmi_pending), a queued NMI counts only once its KVM_REQ_NMI is made: nmi_queued alone is
    /// the sender between atomic_inc and make_request, and process_nmi will not take it yet.
    /// </summary>
    private bool HasEvents()
    {
        var cpu = _ctx.Cpu;
        return Shared.TestRequest(KvmRequest.Nmi)
            || (Shared.InterruptPending && cpu.IF && !cpu.InterruptShadow);
    }
}
