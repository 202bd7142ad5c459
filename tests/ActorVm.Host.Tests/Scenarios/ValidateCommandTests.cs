namespace ActorVm.Host.Tests.Scenarios;

/// <summary><c>validate</c> and <c>run</c> on bad scenarios: every problem, located by file and JSON path (or line and column), exit status 2.</summary>
public sealed class ValidateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("actorvm-validate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string json)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, json);
        return path;
    }

    private static string Good(string machine = """{ "vcpus": 2, "memoryMiB": 16 }""", string guest = """{ "program": { "name": "ipi-ring", "args": { "rounds": 2 } } }""", string expect = "{}") =>
        $$"""{ "name": "t", "description": "d", "machine": {{machine}}, "guest": {{guest}}, "expect": {{expect}} }""";

    private (int Code, string Stdout, string Stderr) Validate(params string[] files)
    {
        var (code, _, stdout, stderr) = HostRun.Run(["validate", .. files]);
        return (code, stdout, stderr);
    }

    [Fact]
    public void AGoodScenarioIsOk()
    {
        var (code, stdout, stderr) = Validate(Write("good.json", Good()));
        Assert.Equal(0, code);
        Assert.Contains("good.json: ok (t)", stdout, StringComparison.Ordinal);
        Assert.Equal("", stderr);
    }

    [Fact]
    public void SyntaxErrorHasLineAndColumn()
    {
        var path = Write("syntax.json", "{\n  \"name\": \"t\",\n  \"description\": \"d\"\n  \"machine\": {}\n}");
        var (code, _, stderr) = Validate(path);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains($"{path}: line 4, column 3: not valid JSON", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{ "vcpus": "four" }""", "$.machine.vcpus: expected integer; found \"four\"")]
    [InlineData("""{ "vcpus": 0 }""", "$.machine.vcpus: expected minimum 1; found 0")]
    [InlineData("""{ "vcpus": 300, "apic": "xapic", "memoryMiB": 16 }""", "$.machine.vcpus: 300 vCPUs cannot be addressed in xAPIC mode (at most 255)")]
    [InlineData("""{ "vcpu": 2 }""", "$.machine.vcpu: unknown field 'vcpu'; did you mean 'vcpus'?")]
    [InlineData("""{ "timer": "hw" }""", "$.machine.timer: expected one of \"hv\", \"sw\"; found \"hw\"")]
    [InlineData("""{ "vcpus": 2, "memoryMiB": 4 }""", "$.machine.memoryMiB: program 'ipi-ring' needs at least 8 MiB; found 4")]
    public void BadMachines(string machine, string expected)
    {
        var path = Write("m.json", Good(machine));
        var (code, _, stderr) = Validate(path);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains($"{path}: {expected}", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{ "kernel": { "path": "missing.elf" } }""", "$.guest.kernel.path: kernel image 'missing.elf' not found")]
    [InlineData("""{ "program": { "name": "ipi-rung" } }""", "$.guest.program.name: no built-in program named 'ipi-rung'")]
    [InlineData("""{ "program": { "name": "ipi-ring", "args": { "round": 3 } } }""", "$.guest.program.args.round: program 'ipi-ring' has no argument 'round' (expected one of: rounds)")]
    [InlineData("""{ "program": { "name": "timer", "args": { "mode": "burst" } } }""", "$.guest.program.args.mode: expected one of \"oneshot\", \"periodic\", \"tsc-deadline\"; found \"burst\"")]
    [InlineData("""{ "program": { "name": "halt-wake" } }""", "")]
    public void BadGuests(string guest, string expected)
    {
        var machine = guest.Contains("halt-wake", StringComparison.Ordinal) ? """{ "vcpus": 1, "memoryMiB": 16 }""" : """{ "vcpus": 2, "memoryMiB": 16 }""";
        var path = Write("g.json", Good(machine, guest));
        var (code, _, stderr) = Validate(path);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains(expected == "" ? $"{path}: $.machine.vcpus: program 'halt-wake' runs on 2..4096 vCPUs; the machine has 1" : $"{path}: {expected}", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownStatisticsGetASuggestion()
    {
        var path = Write("s.json", Good(expect: """{ "stats": { "stats.ipisSnt": { ">=": 1 }, "stats.exits": { ">=": 1 } } }"""));
        var (code, _, stderr) = Validate(path);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("$.expect.stats[\"stats.ipisSnt\"]: unknown statistic 'ipisSnt'; did you mean 'ipisSent'?", stderr, StringComparison.Ordinal);
        Assert.Contains("$.expect.stats[\"stats.exits\"]: 'exits' is a group; name a member", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryProblemOfEveryFileIsListed_AndRunRefusesTheSameFile()
    {
        var a = Write("a.json", """{ "name": "t", "description": "d", "machin": {}, "guest": { "program": { "name": "hello" } }, "limits": { "wallSeconds": -1 } }""");
        var b = Write("b.json", Good());
        var (code, stdout, stderr) = Validate(a, b);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains($"{a}: $.machin: unknown field 'machin'; did you mean 'machine'?", stderr, StringComparison.Ordinal);
        Assert.Contains($"{a}: $: missing required field(s) [\"machine\"]", stderr, StringComparison.Ordinal);
        Assert.Contains($"{a}: $.limits.wallSeconds: expected exclusiveMinimum 0; found -1", stderr, StringComparison.Ordinal);
        Assert.Contains("b.json: ok", stdout, StringComparison.Ordinal);

        var run = HostRun.Run(["run", a]);
        Assert.Equal(ExitCodes.InvalidInput, run.Code);
        Assert.Empty(run.Serial);
        Assert.Contains("unknown field 'machin'", run.Stderr, StringComparison.Ordinal);
    }
}
