using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Stats;

/// <summary>fastpath_t (spec §2).</summary>
public enum FastpathResult
{
    None = 0,
    ReenterGuest = 1,
    ExitHandled = 2,
    ExitUserspace = 3,
}

/// <summary>The fastpath handlers vmx_exit_handlers_fastpath dispatches to.</summary>
public enum FastpathHandler
{
    PreemptionTimer = 0,
    X2ApicIcr = 1,
    TscDeadline = 2,
    Hlt = 3,
}

/// <summary>
/// Live per-vCPU counters, written by the vCPU's actors and read as a <see cref="VcpuStatistics"/>
/// snapshot. A counter more than one actor writes (exits, IPIs, …) is updated with Interlocked,
/// since the vCPU, run-loop and LAPIC actors run on different threads. The ones only the vCPU
/// actor writes, once or more per entry (entries, instructions, fastpath verdicts, forced
/// entries), take a plain store (<see cref="AddOwn"/>): the actor's turns are ordered by its
/// mailbox, a 64-bit store is atomic on x64, and a locked add per counter was a measurable part
/// of a fastpath re-entry.
/// </summary>
public sealed class VcpuCounters
{
    public const int ReasonSlots = 128;
    public const int HistogramBuckets = 18;

    public long InstructionsRetired;
    public long Entries;
    public long EntriesCancelled;
    public readonly long[] Exits = new long[ReasonSlots];
    public readonly long[] Slowpath = new long[ReasonSlots];
    public readonly long[,] Fastpath = new long[4, 4];
    public readonly long[] ForcedEntries = new long[2];
    public readonly long[,] ForcedLeak = new long[2, HistogramBuckets];
    public readonly long[] RequestsServiced = new long[64];
    public long InjectedExceptions;
    public long InjectedNmis;
    public long InjectedIrqs;
    public long Halts;
    public long Wakeups;
    public long WarnSlowpathPreemptionTimer;
    public long SecondForcedEntryInInnerLoop;
    public long UnhandledExits;
    public long IpisSent;
    public long IpisReceived;
    public long TimerInterrupts;

    public void Add(ref long counter, long n = 1) => Interlocked.Add(ref counter, n);

    /// <summary>A counter only the vCPU actor writes: one plain store, readers see whole values.</summary>
    public static void AddOwn(ref long counter, long n = 1) => Volatile.Write(ref counter, counter + n);

    public void CountExit(ExitReason reason) => Interlocked.Increment(ref Exits[Slot(reason)]);

    public void CountSlowpath(ExitReason reason) => Interlocked.Increment(ref Slowpath[Slot(reason)]);

    /// <summary>Written by the vCPU actor only (<see cref="AddOwn"/>).</summary>
    public void CountFastpath(FastpathHandler handler, FastpathResult result) => AddOwn(ref Fastpath[(int)handler, (int)result]);

    /// <summary>Bucket 0 holds 0, bucket k holds [2^(k-1), 2^k). Written by the vCPU actor only.</summary>
    public void CountForced(ImmediateExitMethod method, long retired)
    {
        AddOwn(ref ForcedEntries[(int)method]);
        var bucket = retired <= 0 ? 0 : Math.Min(HistogramBuckets - 1, 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)retired));
        AddOwn(ref ForcedLeak[(int)method, bucket]);
    }

    public void CountRequest(int bit) => Interlocked.Increment(ref RequestsServiced[bit]);

    private static int Slot(ExitReason reason) => Math.Clamp((int)reason, 0, ReasonSlots - 1);

    public VcpuStatistics Snapshot(int id)
    {
        static Dictionary<string, long> ByReason(long[] counts)
        {
            var d = new Dictionary<string, long>();
            for (var i = 0; i < counts.Length; i++)
            {
                var n = Volatile.Read(ref counts[i]);
                if (n != 0)
                {
                    d[((ExitReason)i).TraceName()] = n;
                }
            }

            return d;
        }

        var fast = new Dictionary<string, Dictionary<string, long>>();
        foreach (FastpathHandler h in Enum.GetValues<FastpathHandler>())
        {
            var row = new Dictionary<string, long>();
            foreach (FastpathResult r in Enum.GetValues<FastpathResult>())
            {
                var n = Volatile.Read(ref Fastpath[(int)h, (int)r]);
                if (n != 0)
                {
                    row[r.ToString()] = n;
                }
            }

            if (row.Count != 0)
            {
                fast[h.ToString()] = row;
            }
        }

        var forced = new Dictionary<string, ForcedEntryStatistics>();
        foreach (ImmediateExitMethod m in Enum.GetValues<ImmediateExitMethod>())
        {
            var hist = new long[HistogramBuckets];
            for (var b = 0; b < HistogramBuckets; b++)
            {
                hist[b] = Volatile.Read(ref ForcedLeak[(int)m, b]);
            }

            forced[m.ToString()] = new ForcedEntryStatistics(Volatile.Read(ref ForcedEntries[(int)m]), hist);
        }

        var requests = new Dictionary<string, long>();
        for (var bit = 0; bit < 64; bit++)
        {
            var n = Volatile.Read(ref RequestsServiced[bit]);
            if (n != 0)
            {
                requests[KvmRequest.Name(bit)] = n;
            }
        }

        return new VcpuStatistics(
            id,
            Volatile.Read(ref InstructionsRetired),
            Volatile.Read(ref Entries),
            Volatile.Read(ref EntriesCancelled),
            ByReason(Exits),
            fast,
            ByReason(Slowpath),
            forced,
            requests,
            new InjectionStatistics(Volatile.Read(ref InjectedExceptions), Volatile.Read(ref InjectedNmis), Volatile.Read(ref InjectedIrqs)),
            Volatile.Read(ref Halts),
            Volatile.Read(ref Wakeups),
            new WarnStatistics(Volatile.Read(ref WarnSlowpathPreemptionTimer), Volatile.Read(ref SecondForcedEntryInInnerLoop), Volatile.Read(ref UnhandledExits)))
        {
            IpisSent = Volatile.Read(ref IpisSent),
            IpisReceived = Volatile.Read(ref IpisReceived),
            TimerInterrupts = Volatile.Read(ref TimerInterrupts),
        };
    }
}
