using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;
using BenchmarkDotNet.Attributes;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// Guest MIPS of the interpreter on one vCPU (synchronous runner, no actors): the anchor loop of
/// the performance issue (load, add, xor, shl, store, dec, jnz) in 32-bit protected mode, and a
/// memory-heavy loop in 64-bit long mode through 4-level paging. Boot is done in the iteration
/// setup; one operation is one guest instruction, so the reported time per op is ns/instruction
/// and MIPS = 1000 / (ns per op).
/// </summary>
[MemoryDiagnoser]
public class GuestMipsBenchmarks
{
    private const int Iterations = 2_000_000;
    private const int MemoryIterations = 1_000_000;
    private const int IntegerOps = Iterations * GuestPrograms.ComputeInstructionsPerIteration;
    private const int MemoryOps = MemoryIterations * MemoryLoopInstructions;
    private const int MemoryLoopInstructions = 7;

    private static readonly byte[] ComputeImage = GuestPrograms.BuildCompute(Iterations);
    private static readonly byte[] MemoryImage = BuildMemoryLoop();
    private Machine? _machine;

    [IterationSetup(Target = nameof(IntegerLoop))]
    public void SetupInteger() => _machine = Boot(ComputeImage);

    [IterationSetup(Target = nameof(MemoryLoop))]
    public void SetupMemory() => _machine = Boot(MemoryImage);

    [IterationCleanup]
    public void Cleanup() => _machine?.Dispose();

    [Benchmark(OperationsPerInvoke = IntegerOps)]
    public long IntegerLoop() => Run();

    [Benchmark(OperationsPerInvoke = MemoryOps)]
    public long MemoryLoop() => Run();

    private long Run()
    {
        var result = new Runner().Run(_machine!, new RunLimits());
        if (result.DebugExitStatus != 1)
        {
            throw new InvalidOperationException($"guest failed: {result.Outcome} {result.Detail}");
        }

        return result.InstructionsRetired;
    }

    private static Machine Boot(byte[] image)
    {
        var machine = Machine.CreatePc(new MachineConfig(1, 64), _ => { });
        MultibootLoader.Load(machine, image, "bench");
        return machine;
    }

    /// <summary>Long mode: walk a 2 MiB buffer with a 4 KiB + 64 stride, loading and storing (TLB and page-walk heavy).</summary>
    private static byte[] BuildMemoryLoop()
    {
        var k = new MultibootKernelBuilder();
        var c = k.EnterLongMode();
        var a = c.A;
        a.mov(ecx, MemoryIterations);
        a.mov(rsi, 0x400000);
        a.xor(eax, eax);
        var loop = a.CreateLabel();
        a.Label(ref loop);
        a.add(rax, __qword_ptr[rsi]);
        a.mov(__qword_ptr[rsi + 8], rax);
        a.add(rsi, 4096 + 64);
        a.and(rsi, 0x1FFFFF);
        a.or(rsi, 0x400000);
        a.dec(ecx);
        a.jnz(loop);
        c.DebugExit(0);
        return k.Build();
    }
}
