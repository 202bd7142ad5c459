using ActorVm.Benchmarks;
using BenchmarkDotNet.Running;

// `dotnet run --project tests/ActorVm.Benchmarks -c Release -- --filter '*'` runs everything;
// `... -- mips <loop> <iterations> [repeats]` is the quick probe (QuickMips);
// `... -- actors [probe] [rounds]` and `... -- actors scale [vcpus...]` measure the actor layer (ActorProbes);
// `... -- kernel|bootsector <iterations> <file>` writes bench/compare.sh's images (CompareImages).
// See docs/PERFORMANCE.md for the figures and the exact commands.
if (args.Length > 0 && args[0] == "mips")
{
    return QuickMips.Run(args);
}

if (args.Length > 0 && args[0] == "actors")
{
    return ActorProbes.Run(args);
}

if (args.Length > 0 && args[0] is "kernel" or "bootsector")
{
    return CompareImages.Run(args);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
