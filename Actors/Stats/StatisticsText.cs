using System.Globalization;
using System.Text;

namespace ActorVm.Actors.Stats;

/// <summary>Plain-text rendering of <see cref="VmStatistics"/> for the host's end-of-run summary (JSON: serialise the record).</summary>
public static class StatisticsText
{
    public static string Format(VmStatistics stats, bool perVcpu = false)
    {
        var sb = new StringBuilder();
        Append(sb, stats.Total, "total");
        if (perVcpu)
        {
            foreach (var v in stats.PerVcpu)
            {
                Append(sb, v, $"vcpu {v.Vcpu}");
            }
        }

        return sb.ToString();
    }

    private static void Append(StringBuilder sb, VcpuStatistics s, string title)
    {
        var c = CultureInfo.InvariantCulture;
        sb.Append(c, $"[{title}] instructions {s.InstructionsRetired}, entries {s.Entries} (cancelled {s.EntriesCancelled}), halts {s.Halts}, wakeups {s.Wakeups}\n");
        sb.Append(c, $"  exits: {Join(s.ExitsByReason)}\n");
        sb.Append(c, $"  slowpath: {Join(s.SlowpathByReason)}\n");
        sb.Append(c, $"  fastpath: {string.Join(", ", s.FastpathByHandler.Select(h => $"{h.Key}{{{Join(h.Value)}}}"))}\n");
        foreach (var (method, f) in s.ForcedEntries.Where(f => f.Value.Count != 0))
        {
            var buckets = f.LeakHistogram.Select((n, b) => (n, b)).Where(x => x.n != 0)
                .Select(x => $"{(x.b == 0 ? "0" : $"{1L << (x.b - 1)}-{(1L << x.b) - 1}")}:{x.n}");
            sb.Append(c, $"  forced[{method}]: {f.Count} entries, retired before exit {{{string.Join(" ", buckets)}}}\n");
        }

        sb.Append(c, $"  requests: {Join(s.RequestsServiced)}\n");
        sb.Append(c, $"  injected: exceptions {s.Injections.Exceptions}, NMIs {s.Injections.Nmis}, IRQs {s.Injections.Irqs}\n");
        sb.Append(c, $"  WARN: slowpath PREEMPTION_TIMER outside L2 {s.Warnings.SlowpathPreemptionTimerOutsideL2}, second forced entry {s.Warnings.SecondForcedEntryInInnerLoop}, unhandled exits {s.Warnings.UnhandledExits}\n");
    }

    private static string Join(IReadOnlyDictionary<string, long> d) =>
        d.Count == 0 ? "-" : string.Join(", ", d.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}"));
}
