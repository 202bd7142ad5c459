using BenchmarkDotNet.Running;

// `dotnet run --project tests/ActorVm.Benchmarks -c Release -- --filter '*'` runs everything;
// see docs/PERFORMANCE.md for the figures and the exact commands.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
