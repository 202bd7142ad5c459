using ActorVm.Host.Scenarios;

namespace ActorVm.Host.Tests.Scenarios;

/// <summary>Every scenario shipped in configs/ validates, runs on the actor VM within its limits and meets its expectations.</summary>
public sealed class ConfigScenarioTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var (file, _, _) in ScenarioCatalog.List(HostRun.ConfigsDirectory))
        {
            data.Add(Path.GetFileName(file));
        }

        return data;
    }

    [Fact]
    public void ThereAreAtLeastTenScenarios_IncludingTheReadmeDefault()
    {
        var files = ScenarioCatalog.List(HostRun.ConfigsDirectory).Select(f => Path.GetFileName(f.File)).ToList();
        Assert.True(files.Count >= 10, $"{files.Count} scenarios");
        Assert.Contains("default.json", files);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void ScenarioRunsAndMeetsItsExpectations(string file)
    {
        var path = Path.Combine(HostRun.ConfigsDirectory, file);
        var scenario = ScenarioLoader.Load(path);
        var (code, serial, stdout, stderr) = HostRun.Run(["run", path]);
        Assert.True(stderr.Contains("verdict: PASS", StringComparison.Ordinal), stderr);
        Assert.Equal(scenario.Expect.ExitStatus ?? ExitCodes.Clean, code);
        Assert.Empty(stdout);
        Assert.DoesNotContain("[INF]", HostRun.Ascii(serial), StringComparison.Ordinal);
        Assert.NotEmpty(serial);
    }
}
