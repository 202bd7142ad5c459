using ActorVm.Hardware.Guests;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Host.Tests;

/// <summary>Exit statuses of <c>run</c> on the actor VM, and what goes to stdout and stderr.</summary>
public sealed class ExitStatusTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("actorvm-exit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Scenario(string guest, string expect, string limits = """{ "wallSeconds": 10 }""", string machine = """{ "vcpus": 2, "memoryMiB": 16 }""")
    {
        var path = Path.Combine(_dir, "s.json");
        File.WriteAllText(path, $$"""{ "name": "t", "description": "d", "machine": {{machine}}, "guest": {{guest}}, "limits": {{limits}}, "expect": {{expect}} }""");
        return path;
    }

    private string SpinKernel()
    {
        var k = new MultibootKernelBuilder();
        var l = k.Code32.A.CreateLabel();
        k.Code32.A.Label(ref l);
        k.Code32.A.jmp(l);
        var path = Path.Combine(_dir, "spin.bin");
        File.WriteAllBytes(path, k.Build());
        return path;
    }

    [Fact]
    public void MetExpectations_GiveTheGuestsDebugExitStatus_AndStdoutIsOnlySerial()
    {
        var (code, serial, stdout, stderr) = HostRun.Run(["run", Scenario("""{ "program": { "name": "ipi-ring", "args": { "rounds": 3 } } }""", """{ "exitStatus": 1, "serial": { "contains": ["ipi-ring: PASS"] } }""")]);
        Assert.Equal(1, code);
        Assert.Equal("ipi-ring: 2 vCPUs, 3 rounds\nipi-ring: PASS\n", HostRun.Ascii(serial));
        Assert.Empty(stdout);
        Assert.Contains("verdict: PASS (2/2 expectations met)", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b[", stderr, StringComparison.Ordinal); // not a terminal: no colours, no live display
        Assert.DoesNotContain("elapsed", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnmetExpectation_Is10_AndTheSummarySaysWhich()
    {
        var (code, _, _, stderr) = HostRun.Run(["run", Scenario("""{ "program": { "name": "ipi-ring", "args": { "rounds": 3 } } }""",
            """{ "exitStatus": 1, "serial": { "contains": ["no such line"] }, "stats": { "stats.ipisSent": { "<": 2 } } }""")]);
        Assert.Equal(ExitCodes.ExpectationFailed, code);
        Assert.Contains("verdict: FAIL (1/3 expectations met)", stderr, StringComparison.Ordinal);
        Assert.Contains("✘ serial contains \"no such line\" (got not found)", stderr, StringComparison.Ordinal);
        Assert.Contains("✘ stats.ipisSent < 2 (got 7)", stderr, StringComparison.Ordinal); // 6 tokens + 1 wake-up broadcast
    }

    [Fact]
    public void WallAndInstructionLimits_AreTimeout6()
    {
        var k = SpinKernel();
        var wall = HostRun.Run(["run", Scenario($$"""{ "kernel": { "path": "{{k}}" } }""", "{}", """{ "wallSeconds": 0.3 }""")]);
        Assert.Equal(ExitCodes.Timeout, wall.Code);
        Assert.Contains("Timeout after", wall.Stderr, StringComparison.Ordinal);
        var instructions = HostRun.Run(["run", "--kernel", k, "--max-instructions", "1000000", "--timeout", "10"]);
        Assert.Equal(ExitCodes.Timeout, instructions.Code);
        Assert.Contains("instruction limit of 1000000 reached", instructions.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void TripleFault_Is4()
    {
        var k = new MultibootKernelBuilder();
        k.Code32.A.push(0);
        k.Code32.A.push(0);
        k.Code32.A.lidt(__[esp]);
        k.Code32.A.ud2();
        var path = Path.Combine(_dir, "tf.bin");
        File.WriteAllBytes(path, k.Build());
        var (code, serial, _, stderr) = HostRun.Run(["run", "--kernel", path, "--smp", "2"]);
        Assert.Equal(ExitCodes.TripleFault, code);
        Assert.Empty(serial);
        Assert.Contains("TripleFault", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void CtrlC_StopsWithinASecond_AndStillPrintsTheSummary()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(400));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var (code, _, _, stderr) = HostRun.Run(["run", "--kernel", SpinKernel(), "--smp", "2"], cancellationToken: cts.Token);
        Assert.Equal(ExitCodes.Cancelled, code);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1.4 + 0.4), $"took {watch.Elapsed}");
        Assert.Contains("Cancelled after", stderr, StringComparison.Ordinal);
        Assert.Contains("total", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void ListShowsScenariosWithDescriptions_AndPrograms()
    {
        var (code, _, stdout, _) = HostRun.Run(["list", "--dir", HostRun.ConfigsDirectory]);
        Assert.Equal(0, code);
        Assert.Contains("default.json", stdout, StringComparison.Ordinal);
        Assert.Contains("4 vCPUs pass an IPI token", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("scenario.schema.json", stdout, StringComparison.Ordinal);
        foreach (var p in GuestPrograms.All)
        {
            Assert.Contains(p.Name, stdout, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("run")]
    [InlineData("list")]
    [InlineData("validate")]
    [InlineData("programs")]
    [InlineData("guest")]
    public void EveryCommandHasHelp(string command)
    {
        var (code, _, stdout, _) = HostRun.Run([command, "--help"]);
        Assert.Equal(0, code);
        Assert.Contains("Usage:", stdout, StringComparison.Ordinal);
    }
}
