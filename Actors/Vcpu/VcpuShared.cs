using ActorVm.Hardware.X86;
using Akka.Actor;

namespace ActorVm.Actors.Vcpu;

/// <summary>
/// The per-vCPU state that other threads touch while the vCPU may be running a guest slice:
/// KVM's <c>vcpu-&gt;requests</c>, <c>vcpu-&gt;mode</c>, the blocked/wait state, and the few
/// LAPIC facts the run loop needs without a round trip (the hv-timer deadline, the highest
/// deliverable vector, queued NMIs, pending INIT/SIPI). Every field is read and written with
/// Volatile or Interlocked only (spec §3, §12): a slice cannot read its mailbox, so requests
/// never travel only as messages.
/// </summary>
public sealed class VcpuShared
{
    public const ulong NoDeadline = ulong.MaxValue;

    /// <summary>kvm_apic_accept_events' pending_events bits (KVM_APIC_INIT, KVM_APIC_SIPI).</summary>
    public const int ApicInit = 1, ApicSipi = 2;

    private long _requests;
    private int _blocked;
    private int _wakeQueued;
    private int _highestIrr = -1;
    private int _nmiQueued;
    private int _apicEvents;
    private int _sipiVector;
    private int _l2Active;
    private int _nestedEventPending;
    private int _signalPending;
    private int _timerArmed;
    private int _acceptsPicIntr;
    private long _wakeups;
    private long _tpr;
    private long _postedIcr = -1;
    private readonly long[] _pir = new long[4];
    private int _pirOn;
    private int _ppr;

    public VcpuShared(int id, ModeWord mode)
    {
        Id = id;
        Mode = mode;
    }

    public int Id { get; }

    /// <summary>vcpu->mode; the interpreter polls the same object (Cpu.ModeWord).</summary>
    public ModeWord Mode { get; }

    /// <summary>Who receives the wake-up message of a blocked vCPU (its run-loop actor).</summary>
    public IActorRef? RunLoop { get; set; }

    /// <summary>Counts every make_request by bit, for statistics.</summary>
    public long[] RequestsMade { get; } = new long[64];

    public long Requests => Volatile.Read(ref _requests);

    // ---- requests (kvm_make_request / kvm_check_request / kvm_request_pending) ----

    /// <summary>kvm_make_request: a write barrier publishes the payload, then the bit is set atomically.</summary>
    public void MakeRequest(int bit)
    {
        Interlocked.MemoryBarrier();
        Interlocked.Or(ref _requests, 1L << bit);
        Interlocked.Increment(ref RequestsMade[bit]);
    }

    /// <summary>kvm_check_request: test-and-clear, then a full barrier so the payload is read after the bit.</summary>
    public bool CheckRequest(int bit)
    {
        var mask = 1L << bit;
        if ((Volatile.Read(ref _requests) & mask) == 0)
        {
            return false;
        }

        Interlocked.And(ref _requests, ~mask);
        Interlocked.MemoryBarrier();
        return true;
    }

    /// <summary>kvm_clear_request.</summary>
    public void ClearRequest(int bit) => Interlocked.And(ref _requests, ~(1L << bit));

    public bool TestRequest(int bit) => (Volatile.Read(ref _requests) & (1L << bit)) != 0;

    /// <summary>kvm_request_pending: a plain (volatile) read of the whole word.</summary>
    public bool RequestPending => Volatile.Read(ref _requests) != 0;

    /// <summary>
    /// kvm_vcpu_exit_request (E7/E10): EXITING, or any request bit set. Resched/signal work has
    /// no counterpart: the actor's mailbox is served between slices anyway.
    /// </summary>
    public bool ExitRequest => Mode.Read() == ModeWord.ExitingGuestMode || RequestPending || SignalPending;

    /// <summary>
    /// The "signal pending" of the host task (pause or stop from the VM actor): not a request,
    /// but it refuses entries (E7), wakes a blocked vCPU (kvm_vcpu_check_block) and makes vcpu_run return.
    /// </summary>
    public bool SignalPending => Volatile.Read(ref _signalPending) != 0;

    /// <summary>Raises or clears the signal; raising it kicks like a signal's IPI would.</summary>
    public void SetSignal(bool pending)
    {
        Volatile.Write(ref _signalPending, pending ? 1 : 0);
        if (pending)
        {
            Kick();
        }
    }

    /// <summary>
    /// Clears the hv-timer deadline if it still is <paramref name="expected"/> (the deadline the
    /// entry was programmed with): the LAPIC may have published a newer one meanwhile.
    /// </summary>
    public bool TryCancelHvDeadline(ulong expected) => HvDeadlineWord.TryClear(expected);

    // ---- kick and block (kvm_vcpu_kick, kvm_vcpu_wake_up, kvm_vcpu_block) ----

    /// <summary>
    /// kvm_vcpu_kick: a blocked vCPU is woken (a message to its run loop) and nothing else;
    /// otherwise full barrier and CAS IN→EXITING, which ends the running slice at its next block
    /// boundary. Callers make the request (or update the state it covers) first.
    /// </summary>
    public void Kick()
    {
        if (TryWake())
        {
            return;
        }

        Interlocked.MemoryBarrier();
        Mode.TryExit();
    }

    /// <summary>kvm_vcpu_wake_up: true if the vCPU was blocked (a wake message is queued at most once).</summary>
    public bool TryWake()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _blocked) == 0)
        {
            return false;
        }

        if (Interlocked.Exchange(ref _wakeQueued, 1) == 0)
        {
            RunLoop?.Tell(ActorVm.Actors.RunLoop.RunLoopProtocol.Wake.Instance);
        }

        return true;
    }

    public bool Blocked => Volatile.Read(ref _blocked) != 0;

    /// <summary>Run loop only: publishes "blocked" before its final check_block (prepare_to_rcuwait + set_current_state).</summary>
    public void EnterBlocked()
    {
        Volatile.Write(ref _wakeQueued, 0);
        Interlocked.Exchange(ref _blocked, 1);
    }

    /// <summary>Published by the LAPIC owner: its timer is armed (either backend).</summary>
    public bool TimerArmed
    {
        get => Volatile.Read(ref _timerArmed) != 0;
        set => Volatile.Write(ref _timerArmed, value ? 1 : 0);
    }

    /// <summary>
    /// Published by the LAPIC owner: the PIC's INTR reaches this CPU (kvm_apic_accept_pic_intr:
    /// the APIC hardware-disabled, or LINT0 unmasked in ExtINT mode).
    /// </summary>
    public bool AcceptsPicInterrupts
    {
        get => Volatile.Read(ref _acceptsPicIntr) != 0;
        set => Volatile.Write(ref _acceptsPicIntr, value ? 1 : 0);
    }

    /// <summary>How many times the vCPU left the blocked state (for quiescence detection).</summary>
    public long BlockEpoch => Interlocked.Read(ref _wakeups);

    /// <summary>Run loop only: finish_rcuwait.</summary>
    public void LeaveBlocked()
    {
        Interlocked.Increment(ref _wakeups);
        Interlocked.Exchange(ref _blocked, 0);
        Volatile.Write(ref _wakeQueued, 0);
    }

    /// <summary>Run loop only: the wake message was consumed; a later kick may send another.</summary>
    public void WakeConsumed() => Volatile.Write(ref _wakeQueued, 0);

    // ---- LAPIC-published facts ----

    /// <summary>hv_deadline_tsc in guest TSC (the LAPIC publishes it when its timer is offloaded), or <see cref="NoDeadline"/>.</summary>
    public ulong HvDeadline
    {
        get => HvDeadlineWord.Read();
        set => HvDeadlineWord.Write(value);
    }

    /// <summary>The word behind <see cref="HvDeadline"/>; a running slice polls it (Cpu.PublishedDeadline).</summary>
    public DeadlineWord HvDeadlineWord { get; } = new();

    /// <summary>apic_has_interrupt: the highest IRR vector above PPR, or -1. Published by the LAPIC owner before its request and kick.</summary>
    public int HighestDeliverable
    {
        get => Volatile.Read(ref _highestIrr);
        set => Volatile.Write(ref _highestIrr, value);
    }

    /// <summary>
    /// Posted interrupts (spec §8.6, the PIR and its ON bit): a sender sets the vector's bit here
    /// instead of sending the LAPIC actor a message, then makes EVENT and kicks, so a running
    /// target leaves its slice at once rather than when a thread is free for its LAPIC actor.
    /// The LAPIC merges the bits into IRR (sync_pir_to_irr) before it handles any message, e.g.
    /// the run loop's acknowledge. Returns false if the bit was already posted.
    /// </summary>
    public bool PostInterrupt(byte vector)
    {
        var bit = 1L << (vector & 63);
        var fresh = (Interlocked.Or(ref _pir[vector >> 6], bit) & bit) == 0;
        Interlocked.Exchange(ref _pirOn, 1); // after the bit: whoever sees ON finds it
        return fresh;
    }

    /// <summary>ON: some vector is posted and not merged yet.</summary>
    public bool PirPending => Volatile.Read(ref _pirOn) != 0;

    /// <summary>
    /// LAPIC owner (sync_pir_to_irr), first half: clears ON and copies the posted bits (4 × 64)
    /// into <paramref name="bits"/> without clearing them, so a posted vector never disappears
    /// from what others read before the LAPIC has published it in <see cref="HighestDeliverable"/>.
    /// </summary>
    public bool PeekPir(Span<long> bits)
    {
        if (Interlocked.Exchange(ref _pirOn, 0) == 0)
        {
            return false;
        }

        for (var i = 0; i < 4; i++)
        {
            bits[i] = Volatile.Read(ref _pir[i]);
        }

        return true;
    }

    /// <summary>Second half, after publishing: clears the merged bits (a vector posted again meanwhile coalesces, as in IRR).</summary>
    public void ClearPir(ReadOnlySpan<long> bits)
    {
        for (var i = 0; i < 4; i++)
        {
            if (bits[i] != 0)
            {
                Interlocked.And(ref _pir[i], ~bits[i]);
            }
        }
    }

    /// <summary>The highest posted vector not merged yet, or -1.</summary>
    public int HighestPosted
    {
        get
        {
            for (var i = 3; i >= 0; i--)
            {
                var w = Volatile.Read(ref _pir[i]);
                if (w != 0)
                {
                    return (i << 6) | (63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)w));
                }
            }

            return -1;
        }
    }

    /// <summary>PPR as the LAPIC last published it (with <see cref="HighestDeliverable"/>).</summary>
    public int Ppr
    {
        get => Volatile.Read(ref _ppr);
        set => Volatile.Write(ref _ppr, value);
    }

    /// <summary>
    /// apic_has_interrupt including what is posted: a deliverable IRR vector, or a posted vector
    /// whose class is above PPR (SDM 11.8.3.1), as KVM syncs the PIR before it looks. A PPR that
    /// changes meanwhile only costs an acknowledge that finds nothing, or an EVENT later.
    /// </summary>
    public bool InterruptPending
    {
        get
        {
            // The PIR first: the LAPIC publishes a merged vector before it clears its bit, so a
            // vector gone from the PIR here is in the HighestDeliverable read after it.
            var posted = HighestPosted;
            if (posted >= 0 && (posted & 0xF0) > (Ppr & 0xF0))
            {
                return true;
            }

            return HighestDeliverable >= 0;
        }
    }

    /// <summary>
    /// The TPR class the guest sees in CR8 (SVM's V_TPR, VMX's virtual-APIC TPR), packed with an
    /// epoch: bits 3:0 hold CR8, bits 63:8 the LAPIC's TPR epoch. The LAPIC publishes a new epoch
    /// whenever it changes TPR itself (a TPR register write, INIT, disabling the APIC); the vCPU
    /// loads CR8 from here at every entry (sync_lapic_to_cr8) and, when the guest changed CR8,
    /// stores its value under the same epoch (sync_cr8_to_lapic) before telling the LAPIC.
    /// </summary>
    public long Tpr => Volatile.Read(ref _tpr);

    /// <summary>CR8 as published (bits 3:0 of <see cref="Tpr"/>).</summary>
    public static ulong Cr8Of(long tpr) => (ulong)tpr & 0xF;

    /// <summary>The LAPIC epoch of a published <see cref="Tpr"/>.</summary>
    public static long EpochOf(long tpr) => tpr >> 8;

    /// <summary>LAPIC owner: TPR changed on the LAPIC's side; a guest CR8 write from an older epoch loses.</summary>
    public void PublishTpr(long epoch, ulong cr8) => Volatile.Write(ref _tpr, (epoch << 8) | (long)(cr8 & 0xF));

    /// <summary>
    /// vCPU: the guest wrote CR8 during an entry that loaded <paramref name="loaded"/>. Succeeds
    /// (and the vCPU then tells the LAPIC) unless the LAPIC published a newer TPR meanwhile.
    /// </summary>
    public bool TryStoreGuestCr8(long loaded, ulong cr8) =>
        Interlocked.CompareExchange(ref _tpr, (loaded & ~0xFL) | (long)(cr8 & 0xF), loaded) == loaded;

    /// <summary>
    /// The x2APIC ICR fastpath sent an IPI itself (it could not reach the sender's own LAPIC): the
    /// register value kvm_x2apic_icr_write would leave in the APIC page is posted here instead of
    /// travelling as a message. The LAPIC actor stores it before it handles its next message, so
    /// a later RDMSR/INIT sees it in order (the sender's earlier register writes were all applied
    /// before it re-entered). Never all ones: ICR bits 31:20 are reserved, so -1 means "none".
    /// </summary>
    public void PostIcr(ulong value) => Volatile.Write(ref _postedIcr, (long)value);

    /// <summary>LAPIC owner: takes the posted ICR value, if any.</summary>
    public bool TakePostedIcr(out ulong value)
    {
        value = 0;
        if (Volatile.Read(ref _postedIcr) == -1)
        {
            return false;
        }

        var posted = Interlocked.Exchange(ref _postedIcr, -1);
        value = (ulong)posted;
        return posted != -1;
    }

    /// <summary>nmi_queued (atomic_inc by the sender, drained by process_nmi).</summary>
    public void QueueNmi() => Interlocked.Increment(ref _nmiQueued);

    public int NmiQueued => Volatile.Read(ref _nmiQueued);

    public int TakeQueuedNmis() => Interlocked.Exchange(ref _nmiQueued, 0);

    /// <summary>INIT replaces any pending SIPI (spec §8.3: pending_events = {INIT}).</summary>
    public void PostInit() => Interlocked.Exchange(ref _apicEvents, ApicInit);

    /// <summary>SIPI: store the vector, write barrier, then set the bit.</summary>
    public void PostSipi(byte vector)
    {
        Volatile.Write(ref _sipiVector, vector);
        Interlocked.MemoryBarrier();
        Interlocked.Or(ref _apicEvents, ApicSipi);
    }

    public int ApicEvents => Volatile.Read(ref _apicEvents);

    public int TakeApicEvents(out byte sipiVector)
    {
        var events = Interlocked.Exchange(ref _apicEvents, 0);
        Interlocked.MemoryBarrier();
        sipiVector = (byte)Volatile.Read(ref _sipiVector);
        return events;
    }

    /// <summary>is_guest_mode: no nested guests yet, but the fastpath rules that depend on it stay testable.</summary>
    public bool L2Active
    {
        get => Volatile.Read(ref _l2Active) != 0;
        set => Volatile.Write(ref _l2Active, value ? 1 : 0);
    }

    /// <summary>A pending nested event (kvm_x86_ops.nested_ops->has_events): forces an immediate exit (§5 step 7).</summary>
    public bool NestedEventPending
    {
        get => Volatile.Read(ref _nestedEventPending) != 0;
        set => Volatile.Write(ref _nestedEventPending, value ? 1 : 0);
    }
}
