using System.Text;
using System.Text.Json;
using ActorVm.Host.Commands;

namespace ActorVm.Host.Tests.Commands;

/// <summary>`actorvm stress` as a user sees it: the table, the JSON file with the seed, the exit statuses.</summary>
public sealed class StressCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("actorvm-stress-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var serial = new MemoryStream();
        var text = new StringWriter();
        var error = new StringWriter();
        var code = HostApp.Run(args, serial, text, error);
        Assert.Equal(0, serial.Length); // no guest serial output in a stress run
        return (code, text.ToString(), error.ToString());
    }

    [Fact(DisplayName = "stress: a clean storm prints its row, writes JSON with the seed, exits 0")]
    public void CleanStorm()
    {
        var json = Path.Combine(_dir, "out.json");
        var (code, stdout, stderr) = Run("stress", "--storm", "self-ipi", "--vcpus", "2", "--seconds", "1", "--seed", "5", "--json", json);
        Assert.True(code == 0, stderr);
        Assert.Contains("seed 5", stderr, StringComparison.Ordinal);
        Assert.Contains("events", stderr, StringComparison.Ordinal); // live count
        var row = stdout.Split('\n').Single(l => l.StartsWith("self-ipi", StringComparison.Ordinal));
        Assert.EndsWith("ok", row.TrimEnd(), StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var storm = doc.RootElement.GetProperty("storms")[0];
        Assert.Equal(5, storm.GetProperty("seed").GetInt32());
        Assert.Equal(0, storm.GetProperty("violations").GetInt64());
        Assert.True(storm.GetProperty("events").GetInt64() > 0);
    }

    [Fact(DisplayName = "stress --break skip-recheck: the checker reports I2 and the exit status is non-zero")]
    public void BrokenProtocolFails()
    {
        var (code, stdout, stderr) = Run("stress", "--storm", "all-to-all", "--vcpus", "4", "--seconds", "3", "--seed", "7", "--break", "skip-recheck");
        Assert.Equal(StressCommand.ViolationFound, code);
        Assert.Contains("I2 violated", stderr, StringComparison.Ordinal);
        Assert.Contains("FAIL", stdout, StringComparison.Ordinal);
    }

    [Theory(DisplayName = "stress --break-protocol for the event rules: the storm that exercises the rule reports it and the exit status is non-zero")]
    [InlineData("ignore-priority", "mixed", "I11 violated", "--tsc-mhz", "200")]
    [InlineData("accept-stray-sipi", "sipi-race", "I14 violated", null, null)]
    [InlineData("duplicate-self-ipi", "self-ipi", "I13 violated", null, null)]
    public void BrokenEventRuleFails(string broken, string storm, string reported, string? option, string? value)
    {
        var json = Path.Combine(_dir, broken + ".json");
        var (code, stdout, stderr) = Run(
            ["stress", "--storm", storm, "--vcpus", "4", "--seconds", "3", "--seed", "14", "--break-protocol", broken, "--json", json, .. option is null ? [] : new[] { option, value! }]);
        Assert.Equal(StressCommand.ViolationFound, code);
        Assert.Contains($"protocol broken: {broken}", stderr, StringComparison.Ordinal);
        Assert.Contains(reported, stderr, StringComparison.Ordinal);
        Assert.Contains(stdout.Split('\n'), l => l.StartsWith(storm, StringComparison.Ordinal) && l.TrimEnd().EndsWith("FAIL", StringComparison.Ordinal));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal(broken, doc.RootElement.GetProperty("broken").GetString());
        Assert.False(doc.RootElement.GetProperty("storms")[0].GetProperty("passed").GetBoolean());
    }

    [Fact(DisplayName = "stress --storm sipi-race --apic xapic: the INIT/SIPI race over the xAPIC page runs clean and says what it checked")]
    public void XApicSipiRace()
    {
        var json = Path.Combine(_dir, "race.json");
        var (code, stdout, stderr) = Run("stress", "--storm", "sipi-race", "--apic", "xapic", "--vcpus", "3", "--seconds", "1", "--seed", "9", "--json", json);
        Assert.True(code == 0, stderr);
        Assert.Contains("xAPIC MMIO", stderr, StringComparison.Ordinal);
        Assert.Contains("SIPI dropped", stderr, StringComparison.Ordinal);
        Assert.Contains(stdout.Split('\n'), l => l.StartsWith("sipi-race/xapic", StringComparison.Ordinal) && l.TrimEnd().EndsWith("ok", StringComparison.Ordinal));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal("xapic", doc.RootElement.GetProperty("apic").GetString());
        var storm = doc.RootElement.GetProperty("storms")[0];
        Assert.True(storm.GetProperty("apicAccessExits").GetInt64() > 0);
        Assert.True(storm.GetProperty("checkedEvents").GetProperty("sipisDropped").GetInt64() > 0);
    }

    [Theory(DisplayName = "stress: bad options are refused with a clear message")]
    [InlineData("--storm", "hurricane")]
    [InlineData("--vcpus", "0")]
    [InlineData("--break", "everything")]
    [InlineData("--break-protocol", "ignore-tpr")]
    [InlineData("--tsc-mhz", "5")]
    [InlineData("--apic", "x3apic")]
    [InlineData("--vcpus", "300", "--apic", "xapic")]
    public void BadOptions(string option, string value, string? option2 = null, string? value2 = null)
    {
        var (code, _, stderr) = Run(["stress", option, value, "--seconds", "1", .. option2 is null ? [] : new[] { option2, value2! }]);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.StartsWith("actorvm: ", stderr.Split('\n').Last(l => l.Length > 0), StringComparison.Ordinal);
    }
}
