using System.Runtime.CompilerServices;
using Iced.Intel;
using ActorVm.Hardware.Memory;

namespace ActorVm.Hardware.X86;

/// <summary>A run of decoded instructions starting at one guest-physical address.</summary>
internal sealed unsafe class Block
{
    public required ulong Phys;
    public required ulong Rip;
    public required int Bitness;
    public required ulong Page1;
    public required int Gen1;
    /// <summary>Second page when the last instruction straddles a page boundary, else ulong.MaxValue.</summary>
    public required ulong Page2;
    public required int Gen2;

    /// <summary>
    /// The live generations of <see cref="Page1"/> and of <see cref="Page2"/> (the first page's
    /// again when there is no second one, with <see cref="Gen2"/> equal to <see cref="Gen1"/>), so
    /// the validity check is two loads and compares without bounds checks.
    /// </summary>
    public int* GenPtr1, GenPtr2;
    /// <summary>The instructions with their pre-decoded operands and handlers.</summary>
    public required DecodedInstruction[] Ops;

    /// <summary>
    /// Handler slots the chained loop runs: <see cref="Ops"/>' length, or one less when the last
    /// two instructions are fused (a compare and its Jcc in the second-last slot's handler).
    /// </summary>
    public required int Count;

    /// <summary>Whether the code page(s) it was decoded from are unchanged since.</summary>
    public bool IsCurrent
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref *GenPtr1) == Gen1 && Volatile.Read(ref *GenPtr2) == Gen2;
    }

    /// <summary>The translation epoch in which RIP → this block was last confirmed.</summary>
    public uint Epoch;

    /// <summary>
    /// Direct successor links (taken and fall-through of the final branch, or whatever followed
    /// last): the chained slice loop tries these before the RIP-indexed lookup.
    /// </summary>
    public Block? Link0, Link1;

    /// <summary>The block's slots composed into one method once it ran hot (<see cref="BlockCompiler"/>), else null.</summary>
    public CompiledBlock? Compiled;

    /// <summary>
    /// Runs through the interpreter loop so far, counting up to the compile threshold;
    /// <see cref="int.MinValue"/> once compiling was tried and the block stays interpreted.
    /// </summary>
    public int Runs;
}

/// <summary>
/// Per-vCPU cache of decoded blocks keyed by guest-physical address. A block stays valid while
/// the code generation of its page(s) is unchanged: any store to a page holding decoded code
/// (self-modifying code, a trampoline copied into place, another vCPU's write) moves that
/// generation on (<see cref="GuestMemory.NoteWrite"/>), and the block is decoded again.
/// </summary>
internal sealed unsafe class DecodeCache
{
    private const int MaxBlockInstructions = 64;

    private const int RipCacheSize = 4096;

    private readonly Dictionary<ulong, Block> _blocks = [];
    private readonly Block?[] _byRip = new Block?[RipCacheSize];

    public long Decoded { get; private set; }

    public void Clear()
    {
        _blocks.Clear();
        Array.Clear(_byRip);
    }

    /// <summary>
    /// The block at the current RIP. Fast path: a RIP-indexed slot whose block was confirmed in
    /// the current translation epoch (no TLB flush, CR3 or CS change since) and whose code pages
    /// are unchanged. Otherwise translate RIP and look the block up by physical address.
    /// </summary>
    public Block Lookup(Cpu cpu)
    {
        var rip = cpu.Rip;
        ref var slot = ref _byRip[(int)(rip ^ (rip >> 12)) & (RipCacheSize - 1)];
        var b = slot;
        // A block confirmed in this translation epoch was decoded for the current mode: every
        // mode change (Cpu.UpdateMode) starts a new epoch.
        if (b is not null && b.Rip == rip && b.Epoch == cpu.TranslationEpoch && IsCurrent(b))
        {
            return b;
        }

        var la = cpu.Linear(SegReg.CS, rip);
        var pa = cpu.Translate(la, AccessKind.Execute);
        if (!_blocks.TryGetValue(pa, out b) || b.Rip != rip || b.Bitness != cpu.Bitness || !IsCurrent(b))
        {
            b = Decode(cpu, rip, la, pa);
            _blocks[pa] = b;
        }

        b.Epoch = cpu.TranslationEpoch;
        slot = b;
        return b;
    }

    /// <summary>
    /// The block at RIP after <paramref name="from"/> ran: one of its links when that is still
    /// valid (same RIP, mode and translation epoch, code pages unchanged), else a full
    /// <see cref="Lookup"/> whose result replaces the older link.
    /// </summary>
    public Block Successor(Cpu cpu, Block from)
    {
        var rip = cpu.Rip;
        var epoch = cpu.TranslationEpoch;
        var l = from.Link0;
        if (l is not null && l.Rip == rip && l.Epoch == epoch && IsCurrent(l))
        {
            return l;
        }

        l = from.Link1;
        if (l is not null && l.Rip == rip && l.Epoch == epoch && IsCurrent(l))
        {
            return l;
        }

        var next = Lookup(cpu);
        from.Link1 = from.Link0;
        from.Link0 = next;
        return next;
    }

    private static bool IsCurrent(Block b) => b.IsCurrent;

    private Block Decode(Cpu cpu, ulong rip, ulong la, ulong pa)
    {
        var mem = cpu.Memory;
        if (!mem.IsRam(pa, 1) || cpu.IsApicPage(pa))
        {
            // Executing from MMIO is not modelled: fail loudly with #UD at that address.
            return Single(cpu, rip, pa, InstructionTable.Unsupported(Code.INVALID));
        }

        var page1 = pa >> GuestMemory.PageShift;
        var gen1 = mem.MarkCode(page1);
        var reader = new GuestCodeReader(cpu, la);
        var readerLa = la;
        var decoder = Decoder.Create(cpu.Bitness, reader, rip, DecoderOptions.NoInvalidCheck);
        var list = new List<Instruction>(16);
        // Return addresses of the CALLs this block continued into, and the RETs it continued
        // through to them (index in the block → the address that RET is expected to return to).
        var callReturns = new Stack<ulong>();
        var expectedReturns = new Dictionary<int, ulong>();
        var page2 = ulong.MaxValue;
        var gen2 = 0;
        while (list.Count < MaxBlockInstructions)
        {
            var startOffset = reader.Offset;
            decoder.Decode(out var ins);
            if (reader.Faulted)
            {
                if (list.Count == 0)
                {
                    // The very first instruction cannot be fetched: raise the fetch fault.
                    cpu.Translate(la + (ulong)reader.Offset, AccessKind.Execute);
                    throw new GuestFault(Vector.PF, 0);
                }

                break;
            }

            var endLa = readerLa + (ulong)reader.Offset - 1;
            if ((endLa >> 12) != (la >> 12))
            {
                if (list.Count > 0 && ((readerLa + (ulong)startOffset) >> 12) != (la >> 12))
                {
                    break;
                }

                var pa2 = cpu.Translate(endLa, AccessKind.Execute);
                page2 = pa2 >> GuestMemory.PageShift;
                gen2 = mem.MarkCode(page2);
                list.Add(ins);
                break;
            }

            list.Add(ins);
            if (ins.FlowControl == FlowControl.Next && ins.Code != Code.INVALID && (endLa & 0xFFF) != 0xFFF)
            {
                continue;
            }

            // A direct JMP or CALL to the same page does not end the block: decoding goes on at
            // its target (the branch always goes there, and the page's generation and the
            // translation epoch already cover that code), so a call to a leaf or a jump over an
            // else-branch costs no block boundary. Not into code already in the block: a loop
            // stays one pass per block, so budgets and kicks are checked on every iteration.
            var target = ins.NearBranch64;
            if (ContinuationTarget(cpu, ins, rip, la) is { } targetLa && !list.Exists(i => i.IP == target))
            {
                if (ins.FlowControl == FlowControl.Call)
                {
                    callReturns.Push(ins.NextIP);
                }

                reader = new GuestCodeReader(cpu, targetLa);
                readerLa = targetLa;
                decoder = Decoder.Create(cpu.Bitness, reader, target, DecoderOptions.NoInvalidCheck);
                continue;
            }

            // The RET of a leaf this block called into: predict it returns after that CALL and
            // go on there; its handler checks the popped address and ends the block when the
            // leaf returned elsewhere.
            if (ins.Code is Code.Retnd or Code.Retnq && ins.OpCount == 0 && callReturns.Count > 0)
            {
                var expected = callReturns.Pop();
                var expectedLa = la + (expected - rip);
                if (cpu.Bitness != 64)
                {
                    expectedLa = (uint)expectedLa;
                }

                if ((expectedLa >> 12) == (la >> 12) && !list.Exists(i => i.IP == expected))
                {
                    expectedReturns[list.Count - 1] = expected;
                    reader = new GuestCodeReader(cpu, expectedLa);
                    readerLa = expectedLa;
                    decoder = Decoder.Create(cpu.Bitness, reader, expected, DecoderOptions.NoInvalidCheck);
                    continue;
                }
            }

            break;
        }

        Decoded += list.Count;
        var ops = new DecodedInstruction[list.Count];
        for (var i = 0; i < ops.Length; i++)
        {
            ops[i] = DecodedInstruction.From(list[i]);
            ops[i].Solo = ops[i].Handler = cpu.UseFastForms && Instructions.FastForms.Select(list[i]) is var fast and not 0
                ? fast
                : InstructionTable.HandlerFor(list[i]);
        }

        foreach (var (i, expected) in expectedReturns)
        {
            ops[i].Handler = ops[i].Solo = Instructions.FastForms.PredictedReturn(ops[i].Instruction, cpu.UseFastForms);
            ops[i].FusedTarget = expected;
        }

        // A block that closes with "flag-setting op; Jcc" runs the pair as one superinstruction.
        var fused = ops.Length >= 2 && Instructions.FastForms.TryFuse(ref ops[^2], ops[^1]);
        var genPtr1 = mem.CodeGenerationPointer(page1);
        return new Block
        {
            Phys = pa, Rip = rip, Bitness = cpu.Bitness, Page1 = page1, Gen1 = gen1, Page2 = page2,
            Gen2 = page2 == ulong.MaxValue ? gen1 : gen2,
            GenPtr1 = genPtr1, GenPtr2 = page2 == ulong.MaxValue ? genPtr1 : mem.CodeGenerationPointer(page2),
            Ops = ops, Count = fused ? ops.Length - 1 : ops.Length,
        };
    }

    /// <summary>The linear address of a direct JMP rel / CALL rel target on the block's first page, else null.</summary>
    private static ulong? ContinuationTarget(Cpu cpu, in Instruction ins, ulong rip, ulong la)
    {
        if (ins.FlowControl is not (FlowControl.UnconditionalBranch or FlowControl.Call)
            || ins.OpCount != 1 || ins.Op0Kind is not (OpKind.NearBranch32 or OpKind.NearBranch64))
        {
            return null;
        }

        // Same code segment, so the target's linear address is as far from the block start's as
        // the target is from its RIP (wrapping at 4 GiB outside 64-bit mode, where CS has no base).
        var targetLa = la + (ins.NearBranch64 - rip);
        if (cpu.Bitness != 64)
        {
            targetLa = (uint)targetLa;
        }

        return (targetLa >> 12) == (la >> 12) ? targetLa : null;
    }

    private static Block Single(Cpu cpu, ulong rip, ulong pa, nint handler)
    {
        var ins = default(Instruction);
        ins.IP = rip;
        ins.Length = 1;
        var op = DecodedInstruction.From(ins);
        op.Handler = op.Solo = handler;
        // Never current (no generation is int.MinValue): decoded again, and faulting, every time.
        var genPtr = cpu.Memory.CodeGenerationPointer(0);
        return new Block
        {
            Phys = pa, Rip = rip, Bitness = cpu.Bitness, Page1 = 0, Gen1 = int.MinValue, Page2 = ulong.MaxValue, Gen2 = int.MinValue,
            GenPtr1 = genPtr, GenPtr2 = genPtr,
            Ops = [op], Count = 1,
        };
    }

    /// <summary>Feeds the decoder from guest memory through the CPU's fetch translation.</summary>
    private sealed class GuestCodeReader(Cpu cpu, ulong start) : CodeReader
    {
        public int Offset { get; private set; }

        public bool Faulted { get; private set; }

        public override int ReadByte()
        {
            try
            {
                var pa = cpu.Translate(start + (ulong)Offset, AccessKind.Execute);
                if (!cpu.Memory.IsRam(pa, 1))
                {
                    Faulted = true;
                    return -1;
                }

                Offset++;
                return cpu.ReadPhysical(pa, 1) is var b ? (int)b : -1;
            }
            catch (GuestFault)
            {
                Faulted = true;
                return -1;
            }
        }
    }
}
