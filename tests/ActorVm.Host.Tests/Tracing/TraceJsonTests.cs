using System.Text.Json;

namespace ActorVm.Host.Tests.Tracing;

/// <summary>--trace-json writes Chrome trace-event JSON: one named track per vCPU, guest slices, exits, IPI flows.</summary>
public sealed class TraceJsonTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("actorvm-trace-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void IpiRingTraceHasOneTrackPerVcpu_AndFlowsFromSenderToReceiver()
    {
        var json = Path.Combine(_dir, "t.json");
        var stats = Path.Combine(_dir, "s.json");
        var text = Path.Combine(_dir, "t.txt");
        var (code, _, _, stderr) = HostRun.Run(["run", "--program", "ipi-ring", "--smp", "4", "-m", "16", "--trace-json", json, "--stats-json", stats,
            "--trace", text, "--trace-events", "kvm_apic_ipi,kvm_entry"]);
        Assert.Equal(1, code);

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var events = doc.RootElement.GetProperty("traceEvents").EnumerateArray().ToList();
        var tracks = events.Where(e => e.GetProperty("ph").GetString() == "M" && e.GetProperty("name").GetString() == "thread_name")
            .ToDictionary(e => e.GetProperty("tid").GetInt32(), e => e.GetProperty("args").GetProperty("name").GetString());
        Assert.Equal(["vCPU 0", "vCPU 1", "vCPU 2", "vCPU 3"], Enumerable.Range(0, 4).Select(i => tracks[i]));

        // One process, whose pid is no track's tid: a viewer takes tid == pid for the main
        // thread and lists it first, out of vCPU order.
        var pids = events.Select(e => e.GetProperty("pid").GetInt32()).Distinct().ToList();
        Assert.Single(pids);
        Assert.DoesNotContain(pids[0], tracks.Keys);
        for (var v = 0; v < 4; v++)
        {
            Assert.Contains(events, e => e.GetProperty("ph").GetString() == "X" && e.GetProperty("name").GetString()!.StartsWith("guest", StringComparison.Ordinal) && e.GetProperty("tid").GetInt32() == v);
            Assert.Contains(events, e => e.GetProperty("ph").GetString() == "i" && e.GetProperty("cat").GetString()!.StartsWith("exit,", StringComparison.Ordinal) && e.GetProperty("tid").GetInt32() == v);
        }

        // The token goes 0 → 1 → 2 → 3 → 0: each flow starts on the sender's track and ends on the next vCPU's.
        var outs = events.Where(e => e.TryGetProperty("flow_out", out _)).ToDictionary(e => e.GetProperty("bind_id").GetInt64(), e => e);
        var ins = events.Where(e => e.TryGetProperty("flow_in", out _) && e.GetProperty("cat").GetString() == "ipi" && e.GetProperty("name").GetString()!.StartsWith("IPI 0x40", StringComparison.Ordinal)).ToList();
        Assert.True(ins.Count >= 400, $"{ins.Count} token flows");
        Assert.All(ins, i =>
        {
            var from = outs[i.GetProperty("bind_id").GetInt64()].GetProperty("tid").GetInt32();
            Assert.Equal((from + 1) % 4, i.GetProperty("tid").GetInt32());
            Assert.True(i.GetProperty("ts").GetDouble() >= outs[i.GetProperty("bind_id").GetInt64()].GetProperty("ts").GetDouble());
        });

        using var s = JsonDocument.Parse(File.ReadAllText(stats));
        Assert.Equal(1, s.RootElement.GetProperty("exitStatus").GetInt32());
        Assert.True(s.RootElement.GetProperty("stats").GetProperty("vcpu2").GetProperty("ipisReceived").GetInt64() >= 100);

        var lines = File.ReadAllLines(text);
        Assert.Contains(lines, l => l.Contains(" kvm_apic_ipi: dst ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains(" kvm_entry: vcpu ", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains(" kvm_exit: ", StringComparison.Ordinal));
        Assert.Contains("trace-event JSON written", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownTraceEventIsInvalidInputWithASuggestion()
    {
        var (code, _, _, stderr) = HostRun.Run(["run", "--program", "hello", "--trace", Path.Combine(_dir, "x"), "--trace-events", "kvm_exitt"]);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("unknown event 'kvm_exitt'; did you mean 'kvm_exit'?", stderr, StringComparison.Ordinal);
    }
}
