namespace ActorVm.Actors.Stats;

/// <summary>
/// Forced immediate exits of one method. <see cref="LeakHistogram"/>[0] counts entries that
/// retired no guest instruction before the exit; bucket k counts [2^(k-1), 2^k) instructions.
/// The preemption timer must keep everything in bucket 0 (spec I6); the self-IPI figure is the
/// leak Sean's review warned about, measured.
/// </summary>
public sealed record ForcedEntryStatistics(long Count, long[] LeakHistogram)
{
    public long Leaked => Count - (LeakHistogram.Length == 0 ? 0 : LeakHistogram[0]);
}

public sealed record InjectionStatistics(long Exceptions, long Nmis, long Irqs);

/// <summary>Counters that must stay 0: each is a WARN in KVM or an invariant of spec §10.</summary>
/// <param name="SlowpathPreemptionTimerOutsideL2">handle_preemption_timer's WARN_ON_ONCE(!is_guest_mode) (I8).</param>
/// <param name="SecondForcedEntryInInnerLoop">A forced entry after a fastpath re-entry (I7).</param>
/// <param name="UnhandledExits">Exits with no slowpath handler (each also ends the VM).</param>
public sealed record WarnStatistics(long SlowpathPreemptionTimerOutsideL2, long SecondForcedEntryInInnerLoop, long UnhandledExits)
{
    public static WarnStatistics operator +(WarnStatistics a, WarnStatistics b) =>
        new(a.SlowpathPreemptionTimerOutsideL2 + b.SlowpathPreemptionTimerOutsideL2, a.SecondForcedEntryInInnerLoop + b.SecondForcedEntryInInnerLoop, a.UnhandledExits + b.UnhandledExits);
}

/// <summary>One vCPU's statistics (or the VM total, with <see cref="Vcpu"/> = -1).</summary>
public sealed record VcpuStatistics(
    int Vcpu,
    long InstructionsRetired,
    long Entries,
    long EntriesCancelled,
    IReadOnlyDictionary<string, long> ExitsByReason,
    IReadOnlyDictionary<string, Dictionary<string, long>> FastpathByHandler,
    IReadOnlyDictionary<string, long> SlowpathByReason,
    IReadOnlyDictionary<string, ForcedEntryStatistics> ForcedEntries,
    IReadOnlyDictionary<string, long> RequestsServiced,
    InjectionStatistics Injections,
    long Halts,
    long Wakeups,
    WarnStatistics Warnings)
{
    public static VcpuStatistics Sum(IReadOnlyList<VcpuStatistics> all)
    {
        static Dictionary<string, long> Merge(IEnumerable<IReadOnlyDictionary<string, long>> ds)
        {
            var r = new Dictionary<string, long>();
            foreach (var d in ds)
            {
                foreach (var (k, v) in d)
                {
                    r[k] = r.GetValueOrDefault(k) + v;
                }
            }

            return r;
        }

        var fast = new Dictionary<string, Dictionary<string, long>>();
        foreach (var s in all)
        {
            foreach (var (h, row) in s.FastpathByHandler)
            {
                fast[h] = Merge([fast.GetValueOrDefault(h) ?? [], row]);
            }
        }

        var forced = new Dictionary<string, ForcedEntryStatistics>();
        foreach (var s in all)
        {
            foreach (var (m, f) in s.ForcedEntries)
            {
                if (forced.TryGetValue(m, out var acc))
                {
                    forced[m] = new ForcedEntryStatistics(acc.Count + f.Count, [.. acc.LeakHistogram.Zip(f.LeakHistogram, (a, b) => a + b)]);
                }
                else
                {
                    forced[m] = f with { LeakHistogram = [.. f.LeakHistogram] };
                }
            }
        }

        return new VcpuStatistics(
            -1,
            all.Sum(s => s.InstructionsRetired),
            all.Sum(s => s.Entries),
            all.Sum(s => s.EntriesCancelled),
            Merge(all.Select(s => s.ExitsByReason)),
            fast,
            Merge(all.Select(s => s.SlowpathByReason)),
            forced,
            Merge(all.Select(s => s.RequestsServiced)),
            new InjectionStatistics(all.Sum(s => s.Injections.Exceptions), all.Sum(s => s.Injections.Nmis), all.Sum(s => s.Injections.Irqs)),
            all.Sum(s => s.Halts),
            all.Sum(s => s.Wakeups),
            all.Aggregate(new WarnStatistics(0, 0, 0), (a, s) => a + s.Warnings));
    }
}

/// <summary>Statistics of a run: the total and each vCPU.</summary>
public sealed record VmStatistics(VcpuStatistics Total, IReadOnlyList<VcpuStatistics> PerVcpu);
