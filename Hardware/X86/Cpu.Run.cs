using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86;

/// <summary>
/// The slice loop: the interpreter's VM-entry. Runs decoded blocks until something needs the
/// run loop (an exit), polling the kick line and the preemption-timer deadline at every block
/// boundary. Instructions that need the outside world (IN/OUT, RDMSR/WRMSR, CPUID, HLT, MMIO to
/// the APIC or to no device) stop before retiring and exit; the handler finishes them with
/// <see cref="Complete"/>, which replays the instruction with the supplied value, as KVM's
/// handlers complete an exit before the next entry.
/// </summary>
public sealed unsafe partial class Cpu
{
    /// <summary>How often (in retired instructions) the slice reads the clock for the preemption timer.</summary>
    public const int DeadlineCheckInterval = 256;

    private bool _breakBlock;
    private bool _shadowRenewed;
    private VmExit? _pendingExit;
    /// <summary>
    /// The block whose instructions are running, or the last one that ran (only meaningful while
    /// <see cref="_index"/> is not negative). It is left set across block boundaries: storing a
    /// reference costs a GC write barrier, and a chained loop re-runs the same block, so it is
    /// only stored when the block changes.
    /// </summary>
    private Block? _block;

    /// <summary>The slot in <see cref="_block"/> being executed, or -1 when no block is running (a block boundary).</summary>
    private int _index = -1;
    private long _sliceRetired;
    private long _retiredBeforeSlice;
    private readonly DecodeCache _decodeCache = new();

    /// <summary>
    /// Whether decoding picks the specialised handlers of <see cref="Instructions.FastForms"/>
    /// (on by default; the equivalence tests turn it off to compare against the generic ones).
    /// </summary>
    public bool UseFastForms { get; set; } = true;

    /// <summary>True while an instruction waits for <see cref="Complete"/> (its exit has not been handled).</summary>
    public bool HasPendingInstruction { get; private set; }

    /// <summary>Where the pending instruction ends when it asked for its exit itself (RequestExit); 0 after an MMIO exit.</summary>
    private ulong _pendingNextIp;

    /// <summary>
    /// A deadline published from outside while a slice runs (the hv timer the LAPIC arms), or
    /// null. At every deadline check a published deadline replaces the one the entry programmed,
    /// as if the vCPU had programmed it synchronously the way KVM's fastpath does.
    /// </summary>
    public DeadlineWord? PublishedDeadline { get; set; }

    /// <summary>The preemption deadline in force when the last slice ended (the entry's, or one adopted from <see cref="PublishedDeadline"/>).</summary>
    public ulong SliceDeadlineTsc { get; private set; }

    // What BlockCompiler's composed methods store and test, as RunSlots does.
    internal static readonly FieldInfo BreakBlockField = typeof(Cpu).GetField(nameof(_breakBlock), BindingFlags.NonPublic | BindingFlags.Instance)!;
    internal static readonly FieldInfo IndexField = typeof(Cpu).GetField(nameof(_index), BindingFlags.NonPublic | BindingFlags.Instance)!;

    private int _compileThreshold = BlockCompiler.DefaultThreshold;

    /// <summary>
    /// Runs of a block through the interpreter loop before it gets a composed method
    /// (<see cref="BlockCompiler"/>): 0 compiles every block on its first run, a negative value
    /// never compiles. Defaults to <see cref="BlockCompiler.DefaultThreshold"/>.
    /// </summary>
    public int BlockCompileThreshold
    {
        get => _compileThreshold;
        set => _compileThreshold = value;
    }

    /// <summary>Blocks of this vCPU that reached the compile threshold and got a composed method (<see cref="BlockCompiler"/>).</summary>
    public long BlocksCompiled { get; private set; }

    /// <summary>Blocks of this vCPU that reached the compile threshold but stay interpreted (a handler without a known method, or the shape cache was full).</summary>
    public long BlocksNotCompilable { get; private set; }

    /// <summary>Instructions decoded so far (decode-cache misses), for statistics.</summary>
    public long InstructionsDecoded => _decodeCache.Decoded;

    /// <summary>
    /// Runs the guest until a VM-exit. Delivers <see cref="VmEntry.Injection"/> first; a zero
    /// preemption deadline then exits 52 before any instruction retires.
    /// </summary>
    public VmExit Run(in VmEntry entry)
    {
        if (HasPendingInstruction)
        {
            throw new InvalidOperationException("VM-entry with an exit still to be completed");
        }

        _retiredBeforeSlice += _sliceRetired;
        _sliceRetired = 0;
        if (entry.Injection is { } injection && !TryDeliver(injection, out var shutdown))
        {
            return shutdown;
        }

        var deadline = entry.PreemptionDeadlineTsc;
        SliceDeadlineTsc = deadline;
        if (deadline == 0)
        {
            return ExitNow(ExitReason.PreemptionTimer);
        }

        var budget = entry.InstructionBudget;
        var published = PublishedDeadline;
        var nextDeadlineCheck = deadline == ulong.MaxValue && published is null ? long.MaxValue
            : entry.DeadlineKnownFar ? DeadlineCheckInterval
            : 0;
        while (true)
        {
            if (ModeWord.Read() == ModeWord.ExitingGuestMode)
            {
                return ExitNow(ExitReason.ExternalInterrupt);
            }

            if (entry.InterruptWindowExiting && IF && !InterruptShadow)
            {
                return ExitNow(ExitReason.InterruptWindow);
            }

            if (entry.NmiWindowExiting && !NmiBlocked && !InterruptShadow)
            {
                return ExitNow(ExitReason.NmiWindow);
            }

            if (_sliceRetired >= nextDeadlineCheck)
            {
                // A deadline armed after this entry began counts from the next check on (at most
                // DeadlineCheckInterval instructions late), not from the next entry a slice later.
                if (published?.Read() is { } p && p != DeadlineWord.None && p != deadline)
                {
                    deadline = p;
                    SliceDeadlineTsc = deadline;
                }

                if (Clock.ReadTsc() >= deadline)
                {
                    return ExitNow(ExitReason.PreemptionTimer);
                }

                nextDeadlineCheck = _sliceRetired + DeadlineCheckInterval;
            }

            if (_sliceRetired >= budget)
            {
                // The host's time slice ran out: leave as a host interrupt would.
                return ExitNow(ExitReason.ExternalInterrupt);
            }

            // Chain blocks inside Step (it polls the kick line itself at every block boundary)
            // up to the next budget or deadline check. A window exit or an interrupt shadow
            // needs this loop's checks after every block, so those run one block per Step.
            var chainUntil = entry.InterruptWindowExiting || entry.NmiWindowExiting || InterruptShadow
                ? 0
                : Math.Min(budget, nextDeadlineCheck);
            if (Step(InterruptShadow ? 1 : int.MaxValue, chainUntil) is { } exit)
            {
                return exit;
            }
        }
    }

    /// <summary>
    /// Finishes the instruction that caused the last exit, with the value the handler produced
    /// (IN data, RDMSR result, MMIO read data; ignored for writes). Returns null when it retired
    /// (or, for a long REP string instruction, made progress), or the next exit it ran into.
    /// </summary>
    public VmExit? Complete(params ReadOnlySpan<ulong> values)
    {
        if (!HasPendingInstruction)
        {
            throw new InvalidOperationException("no exit to complete");
        }

        foreach (var v in values)
        {
            _mmioCompletions.Add(v);
        }

        if (values.Length == 0)
        {
            _mmioCompletions.Add(0);
        }

        HasPendingInstruction = false;
        _mmioReplay = 0;
        var retiredBefore = _sliceRetired;
        var exit = Step(1, 0);
        if (exit is { } e && HasPendingInstruction)
        {
            // The replay needed another exit (a read-modify-write on MMIO exits for the read,
            // then for the write): keep what was supplied so far, the next replay consumes it
            // again in the same order. String instructions drop what their finished elements
            // consumed (CommitCompletions), since those elements are not replayed.
            _mmioReplay = 0;
            return e with { InstructionsRetired = _sliceRetired - retiredBefore };
        }

        RetireMmio();
        return exit is { } other ? other with { InstructionsRetired = _sliceRetired - retiredBefore } : null;
    }

    /// <summary>
    /// kvm_skip_emulated_instruction: the exit handler did everything the pending instruction does
    /// (a WRMSR the fastpath applied), so it retires without a replay: RIP moves past it and an
    /// interrupt shadow it ran under ends (SDM 6.8.3), as after <see cref="Complete"/>. Only for an
    /// exit the instruction requested itself with nothing to consume; an MMIO exit or a partly
    /// completed one must be completed.
    /// </summary>
    public void SkipPendingInstruction()
    {
        if (!HasPendingInstruction || _pendingNextIp == 0 || _mmioCompletions.Count != 0)
        {
            throw new InvalidOperationException("no skippable exit: only an instruction that requested its exit and consumed nothing can be skipped");
        }

        HasPendingInstruction = false;
        Rip = _pendingNextIp;
        InterruptShadow = false;
        Retire(1);
    }

    /// <summary>
    /// Abandons the instruction that caused the last exit: it will be executed afresh on the
    /// next entry (used when the handler injects an exception at that instruction instead,
    /// e.g. #GP for an unknown MSR).
    /// </summary>
    public void AbandonPendingInstruction()
    {
        HasPendingInstruction = false;
        RetireMmio();
    }

    private VmExit ExitNow(ExitReason reason) => new(reason, InstructionsRetired: _sliceRetired);

    /// <summary>
    /// Runs up to one block (at most <paramref name="maxInstructions"/>), then keeps following
    /// the block's direct successor links while fewer than <paramref name="chainUntil"/>
    /// instructions retired in this slice and no kick is pending; returns an exit or null.
    /// </summary>
    private VmExit? Step(int maxInstructions, long chainUntil)
    {
        var shadowBefore = InterruptShadow;
        _shadowRenewed = false;
        try
        {
            if (RunBlocks(maxInstructions, chainUntil) is { } exit)
            {
                return exit;
            }
        }
        catch (GuestFault fault)
        {
            UnwindToFaultingInstruction();
            InterruptShadow = false;
            return TryDeliverFault(fault, out var shutdown) ? null : shutdown;
        }
        catch (MmioExit mmio)
        {
            UnwindToFaultingInstruction();
            _pendingNextIp = 0; // the replay must consume the access's value: not skippable
            HasPendingInstruction = true;
            return mmio.Exit with { InstructionsRetired = _sliceRetired };
        }

        if (shadowBefore && !_shadowRenewed)
        {
            InterruptShadow = false;
        }

        return null;
    }

    /// <summary>
    /// The chained block loop. It has no exception handler of its own (<see cref="Step"/> has),
    /// so the JIT keeps its locals in registers; what a fault needs is in <see cref="_block"/>
    /// and <see cref="_index"/>: the instructions before the faulting one retired, and RIP goes
    /// back to the faulting one (<see cref="UnwindToFaultingInstruction"/>). Per instruction
    /// <see cref="RunSlots"/> stores the index and the next RIP, calls the handler and tests the
    /// break flag.
    /// </summary>
    // Fully optimised from the first call: the chained loop runs for a whole slice, and the
    // tiered JIT would otherwise run it as on-stack-replacement code for most of a short run.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private VmExit? RunBlocks(int maxInstructions, long chainUntil)
    {
        // A fetch fault on a block's first instruction is a fault at RIP: no block is running.
        _index = -1;
        var block = _decodeCache.Lookup(this);
        while (true)
        {
            var ops = block.Ops;
            if (maxInstructions < ops.Length)
            {
                return RunPartialBlock(block, maxInstructions);
            }

            // A reference store is a GC write barrier; a loop's back edge re-runs the same block.
            if (!ReferenceEquals(_block, block))
            {
                _block = block;
            }

            // A hot block runs its composed method (BlockCompiler): the same slots, unrolled,
            // with direct calls the JIT can inline. Counting stops at the threshold.
            if (block.Compiled is null && block.Runs++ == _compileThreshold)
            {
                Compile(block);
            }

            var broken = block.Compiled is { } compiled
                ? compiled(this, ref MemoryMarshal.GetArrayDataReference(ops), block, chainUntil)
                : RunSlots(ops, block.Count);
            if (broken >= 0)
            {
                // The last slot may be a fused pair: both of its instructions retired.
                return EndBrokenBlock(block, broken, broken == block.Count - 1 ? ops.Length - broken : 1);
            }

            _index = -1;
            Retire(ops.Length);
            if (_sliceRetired >= chainUntil || ModeWord.Read() == ModeWord.ExitingGuestMode)
            {
                return null;
            }

            // Block boundary inside the chain: same polling as Run's loop (the kick above;
            // budget and deadline through chainUntil), then the successor without a hash lookup:
            // the most recent link checked here (a loop's back edge), the rest in Successor.
            var next = block.Link0;
            block = next is not null && next.Rip == Rip && next.Epoch == TranslationEpoch && next.IsCurrent
                ? next
                : _decodeCache.Successor(this, block);
        }
    }

    /// <summary>
    /// Runs the first <paramref name="n"/> handler slots of a block; returns -1, or the slot whose
    /// handler ended the block. Its own method so that the loop's few locals (the CPU, the slot
    /// reference, the index, the count) stay in callee-saved registers across the handler calls.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int RunSlots(DecodedInstruction[] ops, int n)
    {
        _breakBlock = false;
        ref var op0 = ref MemoryMarshal.GetArrayDataReference(ops);
        for (var i = 0; i < n; i++)
        {
            ref var op = ref Unsafe.Add(ref op0, i);
            _index = i;
            Rip = op.NextIp;
            // Generic handlers take the record as the Instruction it starts with.
            ((delegate*<Cpu, ref DecodedInstruction, void>)op.Handler)(this, ref op);
            if (_breakBlock)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>
    /// Whether a composed block that ran to its end runs again at once: what the boundary below in
    /// <see cref="RunBlocks"/> does when the successor is the block itself (same RIP, translation
    /// epoch and code), its chain limit and kick poll included; then it retires the block as
    /// RunBlocks would. When false, RunBlocks retires it and takes the boundary itself.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool LoopsAgain(Block block, long chainUntil)
    {
        var n = block.Ops.Length;
        if (Rip != block.Rip || _sliceRetired + n >= chainUntil || ModeWord.Read() == ModeWord.ExitingGuestMode
            || block.Epoch != TranslationEpoch || !block.IsCurrent)
        {
            return false;
        }

        _index = -1;
        Retire(n);
        return true;
    }

    /// <summary>Gives a hot block its composed method, or marks it as staying interpreted.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Compile(Block block)
    {
        // The run counter wraps (after 2^32 runs of a hot block, about a minute): a negative
        // threshold is met then, and means no compiling. (A block found not compilable comes
        // back here after 2^31 runs, and the shape cache answers at once.)
        if (_compileThreshold < 0)
        {
            block.Runs = int.MinValue;
            return;
        }

        // A loop's block ends in a branch back to its start: its method gets the back edge.
        var last = block.Ops[^1].Instruction;
        var loops = last.FlowControl is FlowControl.ConditionalBranch or FlowControl.UnconditionalBranch
            && last.Op0Kind is OpKind.NearBranch16 or OpKind.NearBranch32 or OpKind.NearBranch64
            && last.NearBranchTarget == block.Rip;
        block.Compiled = BlockCompiler.For(block.Ops, block.Count, loops);
        if (block.Compiled is null)
        {
            block.Runs = int.MinValue;
            BlocksNotCompilable++;
        }
        else
        {
            BlocksCompiled++;
        }
    }

    /// <summary>
    /// The first <paramref name="count"/> instructions of a block, each with its own handler
    /// (never a fused pair): the single steps of <see cref="Complete"/> and of an interrupt shadow.
    /// </summary>
    private VmExit? RunPartialBlock(Block block, int count)
    {
        _block = block;
        _breakBlock = false;
        var ops = block.Ops;
        for (var i = 0; i < count; i++)
        {
            ref var op = ref ops[i];
            _index = i;
            Rip = op.NextIp;
            ((delegate*<Cpu, ref DecodedInstruction, void>)op.Solo)(this, ref op);
            if (_breakBlock)
            {
                return EndBrokenBlock(block, i, 1);
            }
        }

        _index = -1;
        Retire(count);
        return null;
    }

    /// <summary>
    /// The handler at slot <paramref name="i"/> ended the block: either it asked for an exit (it
    /// did not retire; RIP back at it) or it changed mode, paging or the code stream (it retired
    /// with <paramref name="width"/> instructions, and the slice loop re-checks everything).
    /// </summary>
    private VmExit? EndBrokenBlock(Block block, int i, int width)
    {
        _index = -1;
        if (_pendingExit is { } exit)
        {
            _pendingExit = null;
            Rip = block.Ops[i].Instruction.IP;
            _pendingNextIp = block.Ops[i].Instruction.NextIP;
            HasPendingInstruction = true;
            Retire(i);
            return exit with { InstructionsRetired = _sliceRetired };
        }

        Retire(i + width);
        _breakBlock = true;
        return null;
    }

    /// <summary>
    /// After a fault or an MMIO exit out of a handler: the instructions before it retired and RIP
    /// is the faulting instruction's (precise exceptions, SDM vol. 3 6.5). Outside a block (a
    /// fetch fault while looking the next block up) RIP already is the fetch address.
    /// </summary>
    private void UnwindToFaultingInstruction()
    {
        if (_index >= 0 && _block is { } b)
        {
            Retire(_index);
            Rip = b.Ops[_index].Instruction.IP;
            _index = -1;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Retire(int count) => _sliceRetired += count;

    /// <summary>Called by an instruction handler that needs the outside world; the instruction does not retire.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal bool TakeCompletion(out ulong value)
    {
        if (_mmioReplay < _mmioCompletions.Count)
        {
            value = _mmioCompletions[_mmioReplay++];
            return true;
        }

        value = 0;
        return false;
    }

    /// <summary>
    /// A string instruction finished one element: the completions that element consumed are
    /// spent and must not be replayed for the next element.
    /// </summary>
    internal void CommitCompletions()
    {
        if (_mmioReplay > 0)
        {
            _mmioCompletions.RemoveRange(0, _mmioReplay);
            _mmioReplay = 0;
        }
    }

    /// <summary>Requests an exit from inside a handler; the handler must return without side effects.</summary>
    internal void RequestExit(in VmExit exit)
    {
        _pendingExit = exit;
        _breakBlock = true;
    }

    /// <summary>STI (with IF=0) and MOV SS/POP SS block interrupts until the next instruction retires (SDM 6.8.3).</summary>
    internal void SetInterruptShadow()
    {
        InterruptShadow = true;
        _shadowRenewed = true;
        _breakBlock = true;
    }

    /// <summary>Ends the current block after this instruction (mode changes, self-modifying code).</summary>
    internal void BreakBlock() => _breakBlock = true;

    /// <summary>The RIP of the instruction being executed (handlers have it as their instruction's IP).</summary>
    internal ulong InstructionStart => _index >= 0 && _block is { } b ? b.Ops[_index].Instruction.IP : Rip;

    /// <summary>Drops every cached decode (mode switch that changes how bytes decode is handled by keys; this is for tests).</summary>
    public void FlushDecodeCache() => _decodeCache.Clear();
}
