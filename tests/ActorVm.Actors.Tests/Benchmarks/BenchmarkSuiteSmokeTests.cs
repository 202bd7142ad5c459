using ActorVm.Benchmarks;

namespace ActorVm.Actors.Tests.Benchmarks;

/// <summary>
/// The benchmark suite (issue 7) must run from a clean clone: every probe and benchmark body runs
/// once here at its smallest size. Each one checks its own run (the guest's debug-exit status,
/// that the operation went through the path it is named for, that a timer probe's guest saw every
/// expiry) and throws otherwise, so a change that breaks a probe's premise fails CI instead of the
/// next measurement. No timing is asserted.
/// </summary>
[Collection(nameof(BenchmarkSuiteSmokeTests))] // one probe at a time: they start whole VMs
public sealed class BenchmarkSuiteSmokeTests
{
    [Theory(DisplayName = "Benchmark suite: each guest-MIPS benchmark body boots its loop and retires every loop instruction")]
    [InlineData("integer", 7)]
    [InlineData("memory", 7)]
    [InlineData("branchy", 9)]
    [InlineData("callret", 6)]
    public void GuestMipsLoops(string loop, int perIteration)
    {
        var b = new GuestMipsBenchmarks();
        Func<long> body = loop switch
        {
            "integer" => () => { b.SetupInteger(); return b.IntegerLoop(); },
            "memory" => () => { b.SetupMemory(); return b.MemoryLoop(); },
            "branchy" => () => { b.SetupBranchy(); return b.BranchyLoop(); },
            _ => () => { b.SetupCallRet(); return b.CallRetLoop(); },
        };
        try
        {
            Assert.InRange(body(), (long)GuestMipsBenchmarks.Iterations * perIteration, (long)GuestMipsBenchmarks.Iterations * perIteration + 10_000);
        }
        finally
        {
            b.Cleanup();
        }
    }

    [Fact(DisplayName = "Benchmark suite: the decode-cache benchmark runs its straight-line code warm and cold")]
    public void DecodeCache()
    {
        var b = new DecodeCacheBenchmarks();
        b.Setup();
        try
        {
            Assert.True(b.Warm() > 0);
            Assert.True(b.Cold() > 0);
        }
        finally
        {
            b.Cleanup();
        }
    }

    [Fact(DisplayName = "Benchmark suite: the quick MIPS probe runs every loop to its PASS status")]
    public void QuickMipsProbe()
    {
        foreach (var loop in new[] { "integer", "memory", "branchy", "callret" })
        {
            Assert.Equal(0, QuickMips.Run(["mips", loop, "10000"]));
        }
    }

    [Fact(DisplayName = "Benchmark suite: every actor probe (fastpath, slowpath, self-IPI, IPI latency, timer fastpath) passes its own checks")]
    public void ActorProbesRun() => Assert.Equal(0, ActorProbes.Run(["actors", "all-probes", "1"]));

    [Fact(DisplayName = "Benchmark suite: the timer-lateness probe's guest sees all its TSC-deadline interrupts on both backends")]
    public void TimerProbeRuns() => Assert.Equal(0, TimerProbe.Run(1));

    [Fact(DisplayName = "Benchmark suite: the scale and all-to-all probes run at 4 vCPUs")]
    public void ScaleProbesRun()
    {
        Assert.Equal(0, ScaleProbe.Run([4]));
        Assert.Equal(0, AllToAllProbe.Run([4]));
    }
}
