using ActorVm.Actors.Stress;
using Xunit.Abstractions;

namespace ActorVm.Actors.Tests.Stress;

/// <summary>
/// A checker that cannot fail proves nothing: with the protocol broken on purpose, the storms
/// must report a violation within their time bound. And an actor that throws must end the VM
/// with a clear error and a report, never a hang.
/// </summary>
public sealed class NegativeControlSpec(ITestOutputHelper output)
{
    [Fact(DisplayName = "Negative control: skipping the E7/E10 re-check is reported as I2")]
    public async Task SkippedRecheckIsCaught()
    {
        var report = await Run(new StormSettings(StormKind.AllToAll, 4, TimeSpan.FromSeconds(5), 11) { SkipEntryRecheck = true });
        Assert.Contains(report.Violations, v => v.Invariant == "I2");
        var i2 = report.Violations.First(v => v.Invariant == "I2");
        Assert.Equal(11, i2.Seed);
        Assert.NotEmpty(i2.Recent);
        Assert.Contains("I2 violated on vCPU", i2.ToString(), StringComparison.Ordinal);
        Assert.False(report.Passed);
    }

    [Fact(DisplayName = "Negative control: kicking before making the request loses a wake-up (I4/I1) and the guests see it")]
    public async Task KickBeforeRequestIsCaught()
    {
        var report = await Run(new StormSettings(StormKind.PingPong, 4, TimeSpan.FromSeconds(5), 12)
        {
            KickBeforeRequest = true,
            Delays = true,
            MaxDelayMicroseconds = 500,
            StallBound = TimeSpan.FromMilliseconds(300),
            DrainBound = TimeSpan.FromSeconds(1),
        });
        Assert.Contains(report.Violations, v => v.Invariant is "I4" or "I1");
        Assert.True(report.Lost > 0 || report.GuestErrors.Count > 0 || !report.Drained, "the guests did not notice the lost wake-up");
        Assert.False(report.Passed);
    }

    [Fact(DisplayName = "Negative control: a LAPIC that ignores PPR (TPR raised in the mixed storm) is reported as I11; the same storm passes without it")]
    public async Task IgnoredPriorityIsCaught()
    {
        // TPR 0x40 masks the IPIs' vector 0x40, never the timer's 0x50; at 2 GHz the timer
        // (re-armed ~9 µs ahead) is nearly always pending and legally beats a masked 0x40 until
        // the JIT has warmed up. A 200 MHz TSC leaves gaps from the first second on.
        var settings = new StormSettings(StormKind.Mixed, 4, TimeSpan.FromSeconds(1), 14) { TscHz = 200_000_000 };
        var clean = await Run(settings);
        Assert.Empty(clean.Violations);
        Assert.True(clean.Passed);

        var report = await Run(settings with { Duration = TimeSpan.FromSeconds(3), IgnorePriority = true });
        var i11 = report.Violations.FirstOrDefault(v => v.Invariant == "I11" && v.Detail.StartsWith("acknowledged", StringComparison.Ordinal));
        Assert.NotNull(i11);
        Assert.Contains("where the highest IRR vector above PPR is none", i11.Detail, StringComparison.Ordinal);
        Assert.Equal(14, i11.Seed);
        Assert.False(report.Passed);
    }

    [Fact(DisplayName = "Negative control: a SIPI outside INIT_RECEIVED that restarts the AP is reported as I14")]
    public async Task StraySipiIsCaught()
    {
        var report = await Run(new StormSettings(StormKind.SipiRace, 4, TimeSpan.FromSeconds(4), 15) { AcceptStraySipi = true });
        Assert.Contains(report.Violations, v => v.Invariant == "I14" && v.Detail.Contains("was not dropped", StringComparison.Ordinal));
        Assert.False(report.Passed);
    }

    [Fact(DisplayName = "Negative control: a self-IPI accepted twice by its sender is reported as I13")]
    public async Task DuplicatedSelfIpiIsCaught()
    {
        var report = await Run(new StormSettings(StormKind.SelfIpi, 2, TimeSpan.FromSeconds(4), 16) { DuplicateSelfIpi = true });
        Assert.Contains(report.Violations, v => v.Invariant == "I13" && v.Detail.Contains("accepted 2 times for", StringComparison.Ordinal));
        Assert.False(report.Passed);
    }

    [Theory(DisplayName = "Actor failure injection: the VM ends with a clear error, the report is still produced")]
    [InlineData(FailingActor.Vcpu)]
    [InlineData(FailingActor.RunLoop)]
    [InlineData(FailingActor.Lapic)]
    public async Task FailingActorEndsTheVm(FailingActor actor)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var report = await Run(new StormSettings(StormKind.AllToAll, 2, TimeSpan.FromSeconds(3), 13)
        {
            Fail = actor,
            FailAfter = 200,
            DrainBound = TimeSpan.FromSeconds(1),
        });
        Assert.StartsWith("Error", report.Outcome, StringComparison.Ordinal);
        Assert.Contains($"injected failure in the {actor} actor", report.Outcome, StringComparison.Ordinal);
        Assert.False(report.OutcomeExpected);
        Assert.False(report.Passed);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
    }

    private async Task<StormReport> Run(StormSettings settings)
    {
        var report = await StormRunner.RunAsync(settings);
        output.WriteLine($"{report.Storm}: events={report.Events} violations={report.ViolationCount} lost={report.Lost} drained={report.Drained} outcome={report.Outcome} {report.Seconds:F2}s");
        foreach (var v in report.Violations.Take(3))
        {
            output.WriteLine(v.ToString());
        }

        foreach (var e in report.GuestErrors.Take(5))
        {
            output.WriteLine("guest: " + e);
        }

        return report;
    }
}
