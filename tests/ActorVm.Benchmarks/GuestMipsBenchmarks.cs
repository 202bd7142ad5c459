using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using BenchmarkDotNet.Attributes;

namespace ActorVm.Benchmarks;

/// <summary>
/// Guest MIPS of the interpreter on one vCPU (synchronous runner, no actors), one benchmark per
/// loop of <see cref="BenchGuests"/>: the anchor integer loop (load, add, xor, shl, store, dec,
/// jnz) in 32-bit protected mode, a memory loop in long mode through 4-level paging, a branchy
/// loop and a call/ret loop. Boot is done in the iteration setup; one operation is one guest
/// instruction of the loop, so the reported time per op is ns/instruction and
/// MIPS = 1000 / (ns per op).
/// </summary>
[MemoryDiagnoser]
public class GuestMipsBenchmarks
{
    public const int Iterations = 2_000_000;

    private static readonly Dictionary<string, byte[]> Images =
        BenchGuests.All.ToDictionary(g => g.Name, g => g.Build(Iterations));

    private Machine? _machine;

    [IterationSetup(Target = nameof(IntegerLoop))]
    public void SetupInteger() => _machine = Boot("integer");

    [IterationSetup(Target = nameof(MemoryLoop))]
    public void SetupMemory() => _machine = Boot("memory");

    [IterationSetup(Target = nameof(BranchyLoop))]
    public void SetupBranchy() => _machine = Boot("branchy");

    [IterationSetup(Target = nameof(CallRetLoop))]
    public void SetupCallRet() => _machine = Boot("callret");

    [IterationCleanup]
    public void Cleanup() => _machine?.Dispose();

    [Benchmark(OperationsPerInvoke = Iterations * 7)]
    public long IntegerLoop() => Run();

    [Benchmark(OperationsPerInvoke = Iterations * 7)]
    public long MemoryLoop() => Run();

    [Benchmark(OperationsPerInvoke = Iterations * 9)]
    public long BranchyLoop() => Run();

    [Benchmark(OperationsPerInvoke = Iterations * 6)]
    public long CallRetLoop() => Run();

    private long Run()
    {
        var result = new Runner().Run(_machine!, new RunLimits());
        if (result.DebugExitStatus != 1)
        {
            throw new InvalidOperationException($"guest failed: {result.Outcome} {result.Detail}");
        }

        return result.InstructionsRetired;
    }

    private static Machine Boot(string loop)
    {
        var machine = Machine.CreatePc(new MachineConfig(1, 64), _ => { });
        MultibootLoader.Load(machine, Images[loop], "bench");
        return machine;
    }
}
