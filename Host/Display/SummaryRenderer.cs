using System.Globalization;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vm;
using ActorVm.Host.Verdict;
using Spectre.Console;

namespace ActorVm.Host.Display;

/// <summary>
/// The end-of-run summary on stderr: how the VM ended, a table with a row per vCPU and the total
/// (instructions, MIPS, exits by reason, fastpath share, forced entries, IPIs sent/received,
/// timer interrupts, halts), then the scenario's verdict expectation by expectation.
/// </summary>
public static class SummaryRenderer
{
    /// <summary>Vertical rows beyond which only the busiest vCPUs and the total are listed.</summary>
    public const int MaxRows = 32;

    public static void Render(IAnsiConsole console, string name, VmResult result, IReadOnlyList<ExpectationResult> verdict)
    {
        var c = CultureInfo.InvariantCulture;
        console.WriteLine();
        console.MarkupLine(string.Create(c, $"[bold]{Markup.Escape(name)}[/]: {Markup.Escape(result.Kind.ToString())} after {result.Elapsed.TotalSeconds:0.000} s — {Markup.Escape(result.Detail)}"));
        var table = new Table().Border(TableBorder.Simple);
        foreach (var h in new[] { "vCPU", "instructions", "MIPS", "exits by reason", "fastpath", "forced (leaked)", "IPIs tx/rx", "timer irqs", "halts" })
        {
            table.AddColumn(new TableColumn(h) { Alignment = h == "exits by reason" ? Justify.Left : Justify.Right });
        }

        var rows = result.Statistics.PerVcpu.ToList();
        var shown = rows.Count <= MaxRows ? rows : [.. rows.OrderByDescending(r => r.InstructionsRetired).Take(MaxRows).OrderBy(r => r.Vcpu)];
        foreach (var v in shown)
        {
            table.AddRow(Row(v, v.Vcpu.ToString(c), result.Elapsed));
        }

        if (shown.Count < rows.Count)
        {
            table.AddRow($"… {rows.Count - shown.Count} more", "", "", "", "", "", "", "", "");
        }

        table.AddRow(Row(result.Statistics.Total, "total", result.Elapsed).Select(s => $"[bold]{s}[/]").ToArray());
        console.Write(table);

        var w = result.Statistics.Total.Warnings;
        console.MarkupLine(string.Create(c, $"warnings: slowpath preemption timer outside L2 {w.SlowpathPreemptionTimerOutsideL2}, second forced entry {w.SecondForcedEntryInInnerLoop}, unhandled exits {w.UnhandledExits}; host timer max lateness {result.HostTimerMaxLatenessMicroseconds:0} µs"));
        if (verdict.Count > 0)
        {
            var met = verdict.Count(v => v.Met);
            console.MarkupLine(met == verdict.Count
                ? $"[green]verdict: PASS[/] ({met}/{verdict.Count} expectations met)"
                : $"[red]verdict: FAIL[/] ({met}/{verdict.Count} expectations met)");
            foreach (var v in verdict)
            {
                console.MarkupLine($"  {(v.Met ? "[green]✔[/]" : "[red]✘[/]")} {Markup.Escape(v.Expectation)} [grey](got {Markup.Escape(v.Actual)})[/]");
            }
        }
    }

    private static string[] Row(VcpuStatistics s, string id, TimeSpan elapsed)
    {
        var c = CultureInfo.InvariantCulture;
        var exits = s.ExitsByReason.Values.Sum();
        var fast = s.FastpathByHandler.Values.Sum(r => r.Where(kv => kv.Key is "ReenterGuest" or "ExitHandled").Sum(kv => kv.Value));
        var forced = s.ForcedEntries.Values.Sum(f => f.Count);
        var leaked = s.ForcedEntries.Values.Sum(f => f.Leaked);
        var byReason = string.Join(" ", s.ExitsByReason.OrderByDescending(kv => kv.Value).Take(4).Select(kv => $"{kv.Key}:{kv.Value}"));
        return
        [
            id,
            s.InstructionsRetired.ToString("N0", c),
            (elapsed.TotalSeconds > 0 ? s.InstructionsRetired / elapsed.TotalSeconds / 1e6 : 0).ToString("0.0", c),
            Markup.Escape(exits == 0 ? "-" : $"{exits} ({byReason})"),
            exits == 0 ? "-" : ((double)fast / exits).ToString("0.0%", c),
            string.Create(c, $"{forced} ({leaked})"),
            string.Create(c, $"{s.IpisSent}/{s.IpisReceived}"),
            s.TimerInterrupts.ToString(c),
            s.Halts.ToString(c),
        ];
    }
}
