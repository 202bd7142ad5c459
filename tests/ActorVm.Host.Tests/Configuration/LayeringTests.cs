using ActorVm.Actors.Vm;
using ActorVm.Hardware.Guests.Smp;
using ActorVm.Host.Configuration;
using ActorVm.Host.Scenarios;

namespace ActorVm.Host.Tests.Configuration;

/// <summary>Options override the scenario, which overrides ACTORVM_ variables, which override appsettings.json, which overrides the defaults.</summary>
public sealed class LayeringTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("actorvm-layers-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string AppSettings(string actorVmSection)
    {
        var path = Path.Combine(_dir, "appsettings.json");
        File.WriteAllText(path, $"{{ \"ActorVm\": {actorVmSection} }}");
        return path;
    }

    private static Scenario ScenarioWith(MachineSpec machine) =>
        new("s", "d", machine, new GuestSpec(Program: new ProgramSpec("hello")), new LimitsSpec(), new Expectations());

    private static RunSettings Resolve(RunOptions options, Scenario? scenario, HostEnvironment env)
    {
        var errors = new List<string>();
        var s = RunSettingsResolver.Resolve(options, scenario, env, errors);
        Assert.Empty(errors);
        return s;
    }

    [Fact]
    public void EachLayerOverridesTheOneBelow()
    {
        var json = AppSettings("""{ "Vcpus": 2, "MemoryMiB": 32, "Timer": "sw", "Apic": "xapic", "Dispatcher": "pinned" }""");
        var env = new HostEnvironment(json, new Dictionary<string, string> { ["ACTORVM_VCPUS"] = "3", ["ACTORVM_MEMORYMIB"] = "48", ["ACTORVM_TIMER"] = "hv" });
        var scenario = ScenarioWith(new MachineSpec(Vcpus: 4, MemoryMiB: 64));
        var options = new RunOptions { Program = "hello", Vcpus = 5 };

        var s = Resolve(options, scenario, env);
        Assert.Equal(5, s.Vcpus); // option over scenario
        Assert.Equal(SettingSource.CommandLine, s.Sources["Vcpus"]);
        Assert.Equal(64UL, s.MemoryMiB); // scenario over environment
        Assert.Equal(SettingSource.Scenario, s.Sources["MemoryMiB"]);
        Assert.Equal(TimerBackend.Hv, s.Timer); // environment over appsettings
        Assert.Equal(SettingSource.Environment, s.Sources["Timer"]);
        Assert.Equal(GuestApicMode.XApic, s.Apic); // appsettings over default
        Assert.Equal(VcpuDispatcher.Pinned, s.Dispatcher);
        Assert.Equal(SettingSource.AppSettings, s.Sources["Apic"]);
        Assert.Equal(ImmediateExitMethod.PreemptionTimer, s.ImmediateExit); // default
        Assert.Equal(SettingSource.Default, s.Sources["ImmediateExit"]);

        // Remove the top layer each time: the next one shows through.
        Assert.Equal(4, Resolve(options with { Vcpus = null }, scenario, env).Vcpus);
        Assert.Equal(3, Resolve(options with { Vcpus = null }, null, env).Vcpus);
        Assert.Equal(2, Resolve(options with { Vcpus = null }, null, env with { Variables = new Dictionary<string, string>() }).Vcpus);
        Assert.Equal(1, Resolve(options with { Vcpus = null }, null, HostRun.Isolated()).Vcpus);
    }

    [Fact]
    public void EnvironmentNamesAreCaseInsensitive_AndBadValuesAreReportedWithTheirSource()
    {
        var env = new HostEnvironment(AppSettings("""{ "Vcpus": "many" }"""), new Dictionary<string, string> { ["actorvm_timer"] = "sw", ["ACTORVM_MEMORYMIB"] = "lots" });
        var errors = new List<string>();
        var s = RunSettingsResolver.Resolve(new RunOptions { Program = "hello" }, null, env, errors);
        Assert.Equal(TimerBackend.Sw, s.Timer);
        Assert.Contains(errors, e => e.StartsWith("ACTORVM_MEMORYMIB: cannot use 'lots'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("appsettings.json ActorVm:Vcpus: cannot use 'many'", StringComparison.Ordinal));
    }

    [Fact]
    public void TheRunCommandAppliesTheLayers_EndToEnd()
    {
        // ACTORVM_VCPUS=2 makes halt-wake (which needs 2 vCPUs) runnable without --smp; --smp 1 on top is refused by the program.
        var env = HostRun.Isolated(variables: new Dictionary<string, string> { ["ACTORVM_VCPUS"] = "2", ["ACTORVM_MEMORYMIB"] = "16" });
        var ok = HostRun.Run(["run", "--program", "halt-wake"], env);
        Assert.Equal(1, ok.Code);
        Assert.Contains("halt-wake: PASS", HostRun.Ascii(ok.Serial), StringComparison.Ordinal);
        Assert.Contains("Vcpus=Environment", ok.Stderr, StringComparison.Ordinal);
        var refused = HostRun.Run(["run", "--program", "halt-wake", "--smp", "1"], env);
        Assert.Equal(ExitCodes.InvalidInput, refused.Code);
        Assert.Contains("program 'halt-wake' runs on 2..4096 vCPUs; the machine has 1", refused.Stderr, StringComparison.Ordinal);
    }
}
