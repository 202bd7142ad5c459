using System.Globalization;
using System.Text.RegularExpressions;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;
using ActorVm.Hardware.Guests.Smp;
using ActorVm.Host.Display;
using Spectre.Console.Testing;

namespace ActorVm.Host.Tests.Display;

/// <summary>
/// The live progress display of issue 5: on a terminal, per vCPU its state, instructions retired
/// and exits per second, with elapsed and remaining time, redrawn in place while the VM runs; with
/// stderr not a terminal, no animation at all.
/// </summary>
public sealed partial class ProgressDisplayTests
{
    private const double WallSeconds = 10;

    [GeneratedRegex(@"\x1B\[[0-9;?]*[A-Za-z]")]
    private static partial Regex AnsiSequence();

    // A frame's header: "<name> — elapsed 0.4 s, remaining 1.1 s, 123,456 instructions".
    [GeneratedRegex(@"progress-test — elapsed (?<elapsed>[0-9.]+) s, remaining (?<remaining>[0-9.]+) s, (?<total>[0-9,]+) instructions")]
    private static partial Regex Header();

    // A table row: "│ 0    │ running │ 1,234,567 │ 12 │".
    [GeneratedRegex(@"│\s*(?<vcpu>\d+)\s*│\s*(?<state>running|halted)\s*│\s*(?<instructions>[0-9,]+)\s*│\s*(?<exits>[0-9,]+)\s*│")]
    private static partial Regex Row();

    [Fact]
    public async Task OnATerminal_EachFrameShowsStateInstructionsAndExitRatePerVcpu_WithElapsedAndRemainingTime()
    {
        // A terminal: interactive, ANSI, tall enough for both rows.
        var terminal = new TestConsole().Interactive().EmitAnsiSequences();
        terminal.Profile.Width = 120;
        terminal.Profile.Height = 40;

        // Two vCPUs: the BSP takes 2,000 periodic LAPIC timer interrupts 1 ms apart (two seconds
        // of running between halts, so the 200 ms frames keep coming even when a loaded machine
        // delays the first one by a second); the AP halts once started and stays halted.
        using var machine = Machine.CreatePc(new MachineConfig(2, 16), _ => { });
        var image = GuestPrograms.Find("timer")!.BuildImage(2, GuestApicMode.X2Apic, 2_000_000_000,
            new Dictionary<string, string> { ["mode"] = "periodic", ["count"] = "2000", ["periodUs"] = "1000" });
        MultibootLoader.Load(machine, image, "timer");

        var monitor = new RunMonitor(new ProgressDisplay(terminal, "progress-test", WallSeconds));
        var result = await VmRunner.RunAsync(machine, new VmOptions
        {
            Vcpus = 2,
            MemoryMiB = 16,
            Timeout = TimeSpan.FromSeconds(WallSeconds),
            Started = monitor.Attach,
        });
        monitor.Dispose();
        Assert.Equal(VmExitKind.Shutdown, result.Kind);

        var raw = terminal.Output;
        // Redrawn in place: Spectre's live display moves the cursor back over the last frame.
        Assert.Matches(@"\x1B\[\d*A", raw);
        var text = AnsiSequence().Replace(raw, "");

        var headers = Header().Matches(text).ToList();
        Assert.True(headers.Count >= 3, $"{headers.Count} frames in:\n{text}");
        var elapsed = headers.Select(h => Number(h, "elapsed")).ToList();
        var remaining = headers.Select(h => Number(h, "remaining")).ToList();
        var totals = headers.Select(h => Number(h, "total")).ToList();
        Assert.All(headers.Select((_, i) => elapsed[i] + remaining[i]), sum => Assert.InRange(sum, WallSeconds - 0.11, WallSeconds + 0.11));
        Assert.True(elapsed[^1] > elapsed[0], $"elapsed {string.Join(", ", elapsed)}");
        Assert.True(totals[^1] > totals[0], $"instructions {string.Join(", ", totals)}");

        // Every frame has one row per vCPU, and a row says running exactly when the vCPU retired
        // instructions since the previous frame. Once the BSP has started (boot can outlast the
        // first frame on a loaded machine) it runs in most frames, its count growing, its exits
        // (timer, HLT, EOI) counted per second; a host that starves it for a whole frame shows it
        // halted there, and that is what the row must then say. The AP starts, halts at once and
        // stays halted: after the frame in which it reached its final count, its rows say halted,
        // with no exits.
        var rows = Row().Matches(text).ToList();
        var bsp = rows.Where(r => r.Groups["vcpu"].Value == "0").ToList();
        var ap = rows.Where(r => r.Groups["vcpu"].Value == "1").ToList();
        Assert.Equal(headers.Count, bsp.Count);
        Assert.Equal(headers.Count, ap.Count);
        var bspStarted = bsp.SkipWhile(r => Number(r, "instructions") == 0).ToList();
        var bspRan = bspStarted.Skip(1).Where((r, i) => Number(r, "instructions") > Number(bspStarted[i], "instructions")).ToList();
        Assert.True(bspRan.Count >= 2, $"vCPU 0 ran in {bspRan.Count} frames:\n{text}");
        // (Spectre may also redraw a frame unchanged: an identical row is that, not a new frame.)
        Assert.All(bspStarted.Skip(1).Select((r, i) => (r, previous: bspStarted[i])).Where(x => x.r.Value != x.previous.Value),
            x => Assert.Equal(Number(x.r, "instructions") > Number(x.previous, "instructions") ? "running" : "halted", x.r.Groups["state"].Value));
        Assert.All(bspRan, r => Assert.True(Number(r, "exits") > 0, r.Value));
        Assert.True(Number(bspStarted[^1], "instructions") > Number(bspStarted[0], "instructions"), string.Join("\n", bspStarted.Select(r => r.Value)));
        var apFinal = Number(ap[^1], "instructions");
        var apHalted = ap.SkipWhile(r => Number(r, "instructions") != apFinal).Skip(1).ToList();
        Assert.True(apFinal > 0 && apHalted.Count >= 1, $"vCPU 1 rows:\n{string.Join("\n", ap.Select(r => r.Value))}");
        Assert.All(apHalted, r => Assert.Equal("halted", r.Groups["state"].Value));
        Assert.All(apHalted, r => Assert.Equal(0, Number(r, "exits")));
        Assert.Contains("exits/s", text, StringComparison.Ordinal);
    }

    [Fact]
    public void WithStderrNotATerminal_TheRunWritesNoAnimation_OnlyTheSummary()
    {
        // HostRun's stderr is a StringWriter: not the process's stderr, so not a terminal. The run
        // lasts over half a second (600 timer ticks 1 ms apart), time for several frames had the
        // monitor drawn any.
        var dir = Directory.CreateTempSubdirectory("actorvm-progress-").FullName;
        try
        {
            var scenario = Path.Combine(dir, "ticks.json");
            File.WriteAllText(scenario, """
                {
                  "name": "ticks",
                  "description": "600 periodic LAPIC timer ticks of 1 ms on the BSP",
                  "machine": { "vcpus": 2, "memoryMiB": 16 },
                  "guest": { "program": { "name": "timer", "args": { "mode": "periodic", "count": 600, "periodUs": 1000 } } },
                  "limits": { "wallSeconds": 10 }
                }
                """);
            var (code, _, _, stderr) = HostRun.Run(["run", scenario]);

            Assert.Equal(1, code); // the guest's debug-exit 0: all ticks arrived
            Assert.DoesNotMatch(@"\x1B\[", stderr);
            Assert.DoesNotContain("elapsed", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("remaining", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("exits/s", stderr, StringComparison.Ordinal);
            // The summary still comes, once, as plain text.
            Assert.Single(Regex.Matches(stderr, "MIPS"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static double Number(Match m, string group) =>
        double.Parse(m.Groups[group].Value.Replace(",", "", StringComparison.Ordinal), CultureInfo.InvariantCulture);
}
