using ActorVm.Host.Scenarios;

namespace ActorVm.Host.Tests.Scenarios;

public sealed class ScenarioLoaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("actorvm-scenario-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string json, string name = "s.json")
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, json);
        return path;
    }

    private static IReadOnlyList<ScenarioError> Errors(string path) =>
        Assert.Throws<ScenarioException>(() => ScenarioLoader.Load(path)).Errors;

    private const string Valid = """
        {
          "name": "ring",
          "description": "a token ring",
          "machine": { "vcpus": 4, "memoryMiB": 64, "apic": "x2apic", "timer": "hv", "immediateExit": "self-ipi" },
          "guest": { "program": { "name": "ipi-ring", "args": { "rounds": 10, "verbose": true } } },
          "limits": { "wallSeconds": 5 },
          "expect": { "exitStatus": 1, "serial": { "inOrder": ["a", "b"] }, "stats": { "stats.warnings.slowpathTimerOutsideL2": { "==": 0 } } }
        }
        """;

    [Fact]
    public void AValidScenarioLoadsWithEveryField()
    {
        var s = ScenarioLoader.Load(Write(Valid));

        Assert.Equal("ring", s.Name);
        Assert.Equal(4, s.Machine.Vcpus);
        Assert.Equal("self-ipi", s.Machine.ImmediateExit);
        Assert.Equal("ipi-ring", s.Guest.Program!.Name);
        Assert.Equal("10", s.Guest.Program.Args!["rounds"]);
        Assert.Equal("true", s.Guest.Program.Args["verbose"]);
        Assert.Equal(5, s.Limits.WallSeconds);
        Assert.Equal(["a", "b"], s.Expect.Serial!.InOrder!);
        Assert.Equal(0, s.Expect.Stats!["stats.warnings.slowpathTimerOutsideL2"]["=="]);
    }

    [Fact]
    public void ASyntaxErrorNamesLineAndColumn()
    {
        var path = Write("{\n  \"name\": \"x\",\n  \"description\" \"missing colon\"\n}");
        var e = Assert.Single(Errors(path));
        Assert.Equal(path, e.File);
        Assert.Equal("line 3, column 17", e.Location);
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void EveryProblemIsReportedWithItsPathAndUnknownFieldsGetASuggestion()
    {
        var path = Write("""
            {
              "name": "x",
              "description": "d",
              "machine": { "vcpu": 4, "memoryMiB": "lots", "timer": "fast" },
              "guest": { "program": { "name": "hello" } },
              "limts": {}
            }
            """);
        var errors = Errors(path);

        Assert.Contains(errors, e => e.Location == "$.machine.vcpu" && e.Message.Contains("did you mean 'vcpus'?"));
        Assert.Contains(errors, e => e.Location == "$.machine.memoryMiB" && e.Message == "expected integer; found \"lots\"");
        Assert.Contains(errors, e => e.Location == "$.machine.timer" && e.Message == "expected one of \"hv\", \"sw\"; found \"fast\"");
        Assert.Contains(errors, e => e.Location == "$.limts" && e.Message.Contains("did you mean 'limits'?"));
        Assert.All(errors, e => Assert.Equal(path, e.File));
    }

    [Fact]
    public void MissingRequiredFieldsAreNamed()
    {
        var errors = Errors(Write("""{ "name": "x", "machine": {} }"""));
        var e = Assert.Single(errors);
        Assert.Equal("$", e.Location);
        Assert.Contains("description", e.Message);
        Assert.Contains("guest", e.Message);
    }

    [Theory]
    [InlineData("""{ "vcpus": 0 }""", "$.machine.vcpus")]
    [InlineData("""{ "vcpus": 300 }""", "$.machine.vcpus")]
    [InlineData("""{ "vcpus": 5000, "apic": "x2apic" }""", "$.machine.vcpus")]
    public void ImpossibleMachinesAreRejected(string machine, string location)
    {
        var errors = Errors(Write($$"""{ "name": "x", "description": "d", "machine": {{machine}}, "guest": { "program": { "name": "hello" } } }"""));
        Assert.Contains(errors, e => e.Location == location);
    }

    [Fact]
    public void AMissingKernelIsAnErrorRelativeToTheScenarioFile()
    {
        var errors = Errors(Write("""{ "name": "x", "description": "d", "machine": {}, "guest": { "kernel": { "path": "nope.elf" } } }"""));
        var e = Assert.Single(errors);
        Assert.Equal("$.guest.kernel.path", e.Location);
        Assert.Contains("nope.elf", e.Message);
    }

    [Fact]
    public void AnUnknownProgramIsAnErrorWhenTheCatalogueIsGiven()
    {
        var path = Write("""{ "name": "x", "description": "d", "machine": {}, "guest": { "program": { "name": "helo" } } }""");
        var ex = Assert.Throws<ScenarioException>(() => ScenarioLoader.Load(path, name => name == "hello"));
        Assert.Equal("$.guest.program.name", Assert.Single(ex.Errors).Location);
    }

    [Fact]
    public void AMissingFileIsReported()
    {
        var e = Assert.Single(Errors(Path.Combine(_dir, "absent.json")));
        Assert.Equal("file not found", e.Message);
    }

    [Fact]
    public void ALevelOfTwoGuestsIsRejected()
    {
        var errors = Errors(Write("""{ "name": "x", "description": "d", "machine": {}, "guest": { "program": { "name": "a" }, "kernel": { "path": "k" } } }"""));
        Assert.Contains(errors, e => e.Location == "$.guest");
    }
}
