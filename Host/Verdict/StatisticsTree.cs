using ActorVm.Actors.Stats;

namespace ActorVm.Host.Verdict;

/// <summary>
/// The statistics as the dotted paths scenarios bound (<c>stats.fastpath.preemptionTimer.exitHandled</c>),
/// built from <see cref="VmStatistics"/>: the VM total at <c>stats.*</c>, each vCPU at
/// <c>stats.vcpuN.*</c>. Names match case-insensitively and ignoring underscores, so
/// <c>stats.exits.externalInterrupt</c> finds KVM's <c>EXTERNAL_INTERRUPT</c>. Counters inside a
/// by-name group (exits, slowpath, fastpath, forced, requests) that never counted read as 0.
/// </summary>
public static class StatisticsTree
{
    /// <summary>Counters directly under <c>stats.</c> (and <c>stats.vcpuN.</c>).</summary>
    public static readonly string[] Scalars = ["instructions", "mips", "entries", "entriesCancelled", "halts", "wakeups", "ipisSent", "ipisReceived", "timerInterrupts"];

    /// <summary>Groups whose members are named by KVM (exit reasons, fastpath handlers, request bits).</summary>
    public static readonly string[] Groups = ["exits", "slowpath", "fastpath", "forced", "requests", "injected", "warnings"];

    public static Dictionary<string, object> Build(VmStatistics stats, TimeSpan elapsed)
    {
        var root = Node(stats.Total, elapsed);
        foreach (var v in stats.PerVcpu)
        {
            root[$"vcpu{v.Vcpu}"] = Node(v, elapsed);
        }

        return root;
    }

    private static Dictionary<string, object> Node(VcpuStatistics s, TimeSpan elapsed) => new()
    {
        ["instructions"] = s.InstructionsRetired,
        ["mips"] = elapsed.TotalSeconds > 0 ? s.InstructionsRetired / elapsed.TotalSeconds / 1e6 : 0.0,
        ["entries"] = s.Entries,
        ["entriesCancelled"] = s.EntriesCancelled,
        ["halts"] = s.Halts,
        ["wakeups"] = s.Wakeups,
        ["ipisSent"] = s.IpisSent,
        ["ipisReceived"] = s.IpisReceived,
        ["timerInterrupts"] = s.TimerInterrupts,
        ["exits"] = s.ExitsByReason.ToDictionary(kv => kv.Key, kv => (object)kv.Value),
        ["slowpath"] = s.SlowpathByReason.ToDictionary(kv => kv.Key, kv => (object)kv.Value),
        ["fastpath"] = s.FastpathByHandler.ToDictionary(kv => kv.Key, kv => (object)kv.Value.ToDictionary(r => r.Key, r => (object)r.Value)),
        ["forced"] = s.ForcedEntries.ToDictionary(kv => kv.Key, kv => (object)new Dictionary<string, object>
        {
            ["count"] = kv.Value.Count,
            ["leaked"] = kv.Value.Leaked,
        }),
        ["requests"] = s.RequestsServiced.ToDictionary(kv => kv.Key, kv => (object)kv.Value),
        ["injected"] = new Dictionary<string, object>
        {
            ["exceptions"] = s.Injections.Exceptions,
            ["nmis"] = s.Injections.Nmis,
            ["irqs"] = s.Injections.Irqs,
        },
        ["warnings"] = new Dictionary<string, object>
        {
            ["slowpathTimerOutsideL2"] = s.Warnings.SlowpathPreemptionTimerOutsideL2,
            ["secondForcedEntryInInnerLoop"] = s.Warnings.SecondForcedEntryInInnerLoop,
            ["unhandledExits"] = s.Warnings.UnhandledExits,
        },
    };

    /// <summary>The value at <paramref name="path"/> (with or without the leading "stats."), or null if the path names nothing.</summary>
    public static double? Lookup(Dictionary<string, object> root, string path)
    {
        var segments = path.Split('.');
        var start = segments.Length > 0 && segments[0] == "stats" ? 1 : 0;
        object node = root;
        var inGroup = false;
        for (var i = start; i < segments.Length; i++)
        {
            if (node is not Dictionary<string, object> d)
            {
                return null;
            }

            var key = d.Keys.FirstOrDefault(k => Same(k, segments[i]));
            if (key is null)
            {
                // A by-name group lists only what happened: an absent member counted nothing.
                return inGroup || (i > start && Groups.Any(g => Same(g, segments[i - 1]))) ? 0 : null;
            }

            inGroup |= Groups.Any(g => Same(g, segments[i]));
            node = d[key];
        }

        return node switch
        {
            long n => n,
            double x => x,
            _ => null,
        };
    }

    /// <summary>Whether a path can name a statistic (for validation before the run): a known scalar, or a member of a known group, optionally under vcpuN.</summary>
    public static string? CheckPath(string path)
    {
        var segments = path.Split('.').Skip(1).ToArray();
        if (segments.Length > 0 && segments[0].StartsWith("vcpu", StringComparison.OrdinalIgnoreCase) && int.TryParse(segments[0].AsSpan(4), out _))
        {
            segments = segments[1..];
        }

        if (segments.Length == 0)
        {
            return "names no statistic";
        }

        var head = segments[0];
        if (Scalars.Any(s => Same(s, head)))
        {
            return segments.Length == 1 ? null : $"'{head}' is a number and has no members";
        }

        if (Groups.Any(g => Same(g, head)))
        {
            return segments.Length >= 2 ? null : $"'{head}' is a group; name a member, e.g. stats.{head}.<name>";
        }

        var all = Scalars.Concat(Groups).Append("vcpuN").ToList();
        var best = all.OrderBy(x => Scenarios.ScenarioLoader.Levenshtein(x, head)).First();
        var hint = Scenarios.ScenarioLoader.Levenshtein(best, head) <= Math.Max(2, head.Length / 3) ? $"; did you mean '{best}'?" : "";
        return $"unknown statistic '{head}'{hint} (expected one of: {string.Join(", ", all)})";
    }

    private static bool Same(string a, string b) =>
        string.Equals(a.Replace("_", "", StringComparison.Ordinal), b.Replace("_", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase);
}
