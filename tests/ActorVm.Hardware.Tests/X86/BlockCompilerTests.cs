using ActorVm.Hardware.X86;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// Composed blocks (BlockCompiler): every handler the decoder can pick maps back to its method,
/// nothing unknown is guessed, blocks compile at the threshold and share code by shape, and a
/// compiled block behaves as the interpreter loop does (the same tests, whole, run compiled in
/// <see cref="CompiledBlockModeTests"/>).
/// </summary>
public sealed unsafe class BlockCompilerTests
{
    [Fact]
    public void EveryInstructionTableHandlerMapsToItsMethod()
    {
        var missing = new List<Code>();
        foreach (var code in Enum.GetValues<Code>())
        {
            var handler = InstructionTable.Handler(code);
            if (HandlerMethods.Find(handler) is not { } m || m.MethodHandle.GetFunctionPointer() != handler)
            {
                missing.Add(code);
            }
        }

        Assert.Empty(missing);
    }

    [Fact]
    public void APointerThatIsNoHandlerIsNotGuessed()
    {
        var notAHandler = (nint)(delegate*<int, int>)&Twice;
        Assert.Null(HandlerMethods.Find(notAHandler));
        Assert.Null(HandlerMethods.Find(0));

        var ops = new DecodedInstruction[2];
        ops[0].Handler = InstructionTable.Handler(Code.Nopd);
        ops[1].Handler = notAHandler;
        Assert.Null(BlockCompiler.For(ops, 2));
    }

    private static int Twice(int x) => 2 * x;

    /// <summary>
    /// Every form the fast-form equivalence families emit, fast and generic, compiles (none of their
    /// handlers is missing from the map) and leaves what the interpreter loop leaves.
    /// </summary>
    [Theory]
    [InlineData(32, true)]
    [InlineData(64, true)]
    [InlineData(32, false)]
    [InlineData(64, false)]
    public void EveryFormOfTheEquivalenceFamiliesCompilesAndAgrees(int bitness, bool fast)
    {
        Action<Assembler, int, (int, int, int, int)>[] families =
            [FastFormsEquivalenceTests.Emit, FastFormsEquivalenceTests.EmitFlowAndAddressing];
        foreach (var emit in families)
        {
            for (var op = 0; op < 64; op++)
            {
                var steps = new[] { (op, 1, 2, -100), (op, 3, 5, 0x30F1), (op ^ 1, 6, 3, 7) };
                var interpreted = Run(bitness, fast, threshold: -1, steps, emit);
                var compiled = Run(bitness, fast, threshold: 0, steps, emit);
                Assert.Equal(0, interpreted.Compiled);
                Assert.True(compiled.Compiled > 0, $"op {op}: no block compiled");
                Assert.Equal(0, compiled.NotCompilable);
                Assert.Equal(interpreted.Gpr, compiled.Gpr);
                Assert.Equal(interpreted.Flags, compiled.Flags);
                Assert.Equal(interpreted.Retired, compiled.Retired);
                Assert.Equal(interpreted.Mem, compiled.Mem);
            }
        }
    }

    private static (ulong[] Gpr, ulong Flags, long Retired, byte[] Mem, long Compiled, long NotCompilable) Run(
        int bitness, bool fast, int threshold, (int, int, int, int)[] steps, Action<Assembler, int, (int, int, int, int)> emit)
    {
        using var h = CpuHarness.Create(bitness);
        h.Cpu.UseFastForms = fast;
        h.Cpu.BlockCompileThreshold = threshold;
        h.Load(a =>
        {
            foreach (var s in steps)
            {
                emit(a, bitness, s);
            }

            a.hlt();
        });
        for (var r = 0; r < 16; r++)
        {
            h.Cpu.Gpr[r] = 0x6100 + (ulong)r * 0x10;
        }

        h.Cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;
        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        return ((ulong[])h.Cpu.Gpr.Clone(), h.Cpu.Flags, h.Cpu.InstructionsRetired, h.Machine.Memory.ReadBytes(0x6000, 0x4000),
            h.Cpu.BlocksCompiled, h.Cpu.BlocksNotCompilable);
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(5, 1)]
    [InlineData(1000, 0)]
    [InlineData(-1, 0)]
    public void ALoopBlockCompilesOnceItRanThresholdTimes(int threshold, int compiled)
    {
        using var h = CpuHarness.Create(32);
        h.Cpu.BlockCompileThreshold = threshold;
        h.Load(a =>
        {
            var top = a.CreateLabel();
            a.mov(ecx, 100);
            a.Label(ref top);
            a.add(eax, ecx);
            a.xor(eax, 0x55);
            a.dec(ecx);
            a.jnz(top);
            a.hlt();
        });

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        // The loop body is one block; the entry (MOV) and the exit (HLT) run once each. HLT
        // exits without retiring.
        Assert.Equal(compiled + (threshold == 0 ? 2 : 0), h.Cpu.BlocksCompiled);
        Assert.Equal(Expected(), h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal(1 + 400, h.Cpu.InstructionsRetired);

        static ulong Expected()
        {
            uint eax = 0;
            for (uint ecx = 100; ecx > 0; ecx--)
            {
                eax = (eax + ecx) ^ 0x55;
            }

            return eax;
        }
    }

    /// <summary>
    /// A compiled loop runs itself again inside its method: it must still stop where the
    /// interpreter loop stops, at the instruction budget (and at every deadline check on the way),
    /// with the same registers and retired count, and exit at once on a kick.
    /// </summary>
    [Theory]
    [InlineData(10_000)]
    [InlineData(12_345)]
    public void ACompiledLoopStopsAtTheBudgetWhereTheInterpreterStops(long budget)
    {
        (ExitReason, long, ulong, ulong, ulong) Run(int threshold)
        {
            using var h = CpuHarness.Create(32);
            h.Cpu.BlockCompileThreshold = threshold;
            h.Load(a =>
            {
                var top = a.CreateLabel();
                a.mov(ecx, 1_000_000);
                a.Label(ref top);
                a.add(eax, ecx);
                a.mov(__dword_ptr[ebx], eax);
                a.xor(eax, 0x55);
                a.dec(ecx);
                a.jnz(top);
                a.hlt();
            });
            h.Cpu.Gpr[Cpu.RBX] = 0x6000;
            var exit = h.Cpu.Run(new VmEntry(InstructionBudget: budget, PreemptionDeadlineTsc: ulong.MaxValue - 1));
            return (exit.Reason, exit.InstructionsRetired, h.Cpu.Rip, h.Cpu.Gpr[Cpu.RAX], h.Cpu.Gpr[Cpu.RCX]);
        }

        var interpreted = Run(-1);
        var compiled = Run(0);
        Assert.Equal(ExitReason.ExternalInterrupt, interpreted.Item1);
        Assert.Equal(interpreted, compiled);
    }

    [Fact]
    public void AKickStopsACompiledLoopAtItsNextIteration()
    {
        using var h = CpuHarness.Create(32);
        h.Cpu.BlockCompileThreshold = 0;
        h.Load(a =>
        {
            var top = a.CreateLabel();
            a.Label(ref top);
            a.inc(eax);
            a.jmp(top);
        });
        h.Cpu.Gpr[Cpu.RAX] = 0;
        var kicker = new Thread(() =>
        {
            // Kick once the loop has run a while (bounded: the loop counts in EAX).
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (Volatile.Read(ref h.Cpu.Gpr[Cpu.RAX]) < 100_000 && sw.Elapsed < TimeSpan.FromSeconds(5))
            {
                Thread.Yield();
            }

            h.Cpu.ModeWord.Set(ModeWord.ExitingGuestMode);
        });
        kicker.Start();
        var exit = h.Cpu.Run(new VmEntry(InstructionBudget: 1L << 40));
        Assert.True(kicker.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(ExitReason.ExternalInterrupt, exit.Reason);
        Assert.Equal(2 * (long)h.Cpu.Gpr[Cpu.RAX], exit.InstructionsRetired);
        Assert.True(h.Cpu.BlocksCompiled > 0);
    }

    [Fact]
    public void BlocksOfOneShapeShareOneMethodAndOtherShapesDoNot()
    {
        var a = Decode(32, asm => { asm.add(eax, ebx); asm.xor(ecx, 7); asm.shl(edx, 3); });
        var b = Decode(32, asm => { asm.add(esi, edi); asm.xor(ebp, 0x1234); asm.shl(eax, 1); });
        var c = Decode(32, asm => { asm.sub(esi, edi); asm.xor(ebp, 0x1234); asm.shl(eax, 1); });

        var ca = BlockCompiler.For(a, a.Length);
        Assert.NotNull(ca);
        Assert.Same(ca, BlockCompiler.For(b, b.Length));
        Assert.NotSame(ca, BlockCompiler.For(c, c.Length));
    }

    /// <summary>vCPUs reaching a new shape at once get one method (the cache compiles under its lock).</summary>
    [Fact]
    public void ConcurrentCompilesOfOneShapeYieldOneMethod()
    {
        // 37 INCs of random registers: a shape no other test compiles, so the threads race for it.
        var rng = new Random(7);
        var regs = new[] { eax, ecx, edx, ebx, esi, edi, ebp };
        var picks = Enumerable.Range(0, 37).Select(_ => regs[rng.Next(regs.Length)]).ToArray();
        var ops = Decode(32, asm =>
        {
            foreach (var r in picks)
            {
                asm.inc(r);
                asm.add(r, 1);
            }
        });
        var results = new CompiledBlock?[8];
        using var start = new Barrier(results.Length);
        var threads = Enumerable.Range(0, results.Length).Select(i => new Thread(() =>
        {
            start.SignalAndWait(TimeSpan.FromSeconds(5));
            results[i] = BlockCompiler.For(ops, ops.Length);
        })).ToArray();
        foreach (var t in threads)
        {
            t.Start();
        }

        foreach (var t in threads)
        {
            Assert.True(t.Join(TimeSpan.FromSeconds(10)));
        }

        Assert.NotNull(results[0]);
        Assert.All(results, r => Assert.Same(results[0], r));
    }

    /// <summary>A fault in the middle of a compiled block: the instructions before it retired, RIP is the faulting one's.</summary>
    [Fact]
    public void AFaultInsideACompiledBlockIsPrecise()
    {
        using var h = CpuHarness.Create(32);
        h.Cpu.BlockCompileThreshold = 0;
        h.InstallFaultStubs();
        var code = h.Assemble(a =>
        {
            a.inc(eax);
            a.mov(__dword_ptr[ebx], ecx);
            a.add(eax, 2);
            a.ud2();                                    // the last two bytes
        });
        h.LoadBytes(CpuHarness.CodeBase, code);
        h.Cpu.Rip = CpuHarness.CodeBase;
        h.Cpu.Gpr[Cpu.RBX] = 0x6000;
        h.Cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(Vector.UD, h.FaultVector);
        Assert.True(h.Cpu.BlocksCompiled > 0);
        Assert.Equal(3UL, h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal(CpuHarness.CodeBase + (ulong)code.Length - 2, h.Machine.Memory.Read32(h.Cpu.Gpr[Cpu.RSP]));
        Assert.Equal(3, h.Cpu.InstructionsRetired);
    }

    /// <summary>
    /// A block that ends at a page boundary on register-only forms (no slot of it stores RIP but
    /// the last): the next block is looked up at the right address.
    /// </summary>
    [Fact]
    public void ABlockOfRegisterOnlyFormsEndingAtAPageBoundaryLeavesRipAfterIt()
    {
        using var h = CpuHarness.Create(32);
        h.Cpu.BlockCompileThreshold = 0;
        var adds = h.Assemble(a => { a.add(eax, ecx); a.add(eax, ecx); a.add(eax, ecx); a.add(eax, ecx); }, 0x8FF8);
        Assert.Equal(8, adds.Length);
        h.LoadBytes(0x8FF8, adds);
        h.LoadBytes(0x9000, h.Assemble(a => a.hlt(), 0x9000));
        h.Cpu.Rip = 0x8FF8;
        h.Cpu.Gpr[Cpu.RCX] = 5;

        Assert.Equal(ExitReason.Hlt, h.Run(1000).Reason);
        Assert.Equal(0x9000UL, h.Cpu.Rip);
        Assert.Equal(20UL, h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal(4, h.Cpu.InstructionsRetired);
        Assert.Equal(2, h.Cpu.BlocksCompiled);
    }

    /// <summary>
    /// A store in the middle of a compiled block rewrites the block's next instruction: the block
    /// ends after the store (no RIP stored before it, so its way out stores it) and the rewritten
    /// instruction runs.
    /// </summary>
    [Fact]
    public void AStoreIntoItsOwnBlockEndsTheCompiledBlockAfterTheStore()
    {
        using var h = CpuHarness.Create(32);
        h.Cpu.BlockCompileThreshold = 0;
        var code = h.Assemble(a =>
        {
            a.inc(edx);
            a.mov(__dword_ptr[ebx], ecx);   // rewrites the immediate of the MOV below
            a.mov(eax, 1);                  // B8 imm32
            a.hlt();
        });
        h.LoadBytes(CpuHarness.CodeBase, code);
        h.Cpu.Rip = CpuHarness.CodeBase;
        h.Cpu.Gpr[Cpu.RBX] = CpuHarness.CodeBase + (ulong)code.Length - 5;
        h.Cpu.Gpr[Cpu.RCX] = 9;
        h.Cpu.Gpr[Cpu.RDX] = 0;

        Assert.Equal(ExitReason.Hlt, h.Run(1000).Reason);
        Assert.Equal(9UL, h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal(1UL, h.Cpu.Gpr[Cpu.RDX]);
        Assert.Equal(3, h.Cpu.InstructionsRetired);
        Assert.True(h.Cpu.BlocksCompiled >= 2);
    }

    private static DecodedInstruction[] Decode(int bitness, Action<Assembler> build)
    {
        var asm = new Assembler(bitness);
        build(asm);
        var stream = new MemoryStream();
        asm.Assemble(new StreamCodeWriter(stream), 0x8000);
        var decoder = Iced.Intel.Decoder.Create(bitness, stream.ToArray(), 0x8000);
        var ops = new List<DecodedInstruction>();
        while (decoder.IP < 0x8000 + (ulong)stream.Length)
        {
            var ins = decoder.Decode();
            var d = DecodedInstruction.From(ins);
            d.Handler = d.Solo = ActorVm.Hardware.X86.Instructions.FastForms.Select(ins) is var f and not 0 ? f : InstructionTable.HandlerFor(ins);
            ops.Add(d);
        }

        return [.. ops];
    }
}
