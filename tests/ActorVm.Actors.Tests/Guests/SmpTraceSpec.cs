using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Tests.Guests;

/// <summary>
/// Issue 3's trace and statistics claims, on a real SMP run (smp-ipi on 4 vCPUs): the
/// <c>[immediate exit]</c> suffix marks exactly the entries the run loop forced (I9), and the
/// statistics split exits into fastpath results and slowpath reasons.
/// </summary>
public sealed partial class SmpTraceSpec
{
    public static TheoryData<ImmediateExitMethod> Methods() => SmpGuestSpec.Methods();

    [Theory(DisplayName = "I9 on smp-ipi: kvm_entry carries [immediate exit] on exactly the forced entries, in order, per vCPU; the NMI's -EBUSY entry is one of them")]
    [MemberData(nameof(Methods))]
    public void ImmediateExitSuffixIffForced(ImmediateExitMethod method)
    {
        var trace = new TraceSink();
        var observer = new EntryRecorder();
        var (serial, result, runner) = SmpGuestSpec.Boot(SmpGuests.BuildIpi(),
            new VmOptions { ImmediateExit = method, Trace = TraceEvents.KvmEntry, TraceLogger = trace.Logger(), Observer = observer });
        Assert.Equal(SmpGuestSpec.Golden("smp-ipi.serial"), serial);
        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        var stats = runner.LastResult!.Statistics;

        for (var vcpu = 0; vcpu < SmpGuests.Vcpus; vcpu++)
        {
            // One kvm_entry line per entry, in the vCPU's order; the suffix iff the run loop's Run carried FORCE.
            var suffixes = trace.Lines.Select(l => EntryLine().Match(l)).Where(m => m.Success && m.Groups[1].Value == vcpu.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .Select(m => m.Groups[2].Success).ToList();
            var forced = observer.Entries(vcpu).Select(e => e.Forced).ToList();
            Assert.Equal(forced, suffixes);
            Assert.Equal(stats.PerVcpu[vcpu].ForcedEntries[method.ToString()].Count, suffixes.Count(s => s));
            Assert.DoesNotContain(observer.Entries(vcpu), e => e.Forced && e.Reentry); // I7
        }

        // The BSP's NMI was injected with IRQ 0x46 pending (-EBUSY): that entry was forced.
        Assert.Contains(observer.Entries(0), e => e.Forced && e.AfterNmiInjection);
        Assert.True(stats.Total.ForcedEntries[method.ToString()].Count >= 1);
        Assert.Equal(new WarnStatistics(0, 0, 0), stats.Total.Warnings);
    }

    [Theory(DisplayName = "Statistics on smp-ipi show the fastpath/slowpath split: HLT and forced exits in the fastpath (preemption timer), APIC accesses and I/O in the slowpath")]
    [MemberData(nameof(Methods))]
    public void StatisticsSplitFastpathAndSlowpath(ImmediateExitMethod method)
    {
        var (_, result, runner) = SmpGuestSpec.Boot(SmpGuests.BuildIpi(), new VmOptions { ImmediateExit = method });
        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        var total = runner.LastResult!.Statistics.Total;
        var forced = total.ForcedEntries[method.ToString()].Count;

        // The APs halt between IPIs: handle_fastpath_hlt finds no event and blocks them.
        Assert.True(total.FastpathByHandler["Hlt"].GetValueOrDefault("ExitHandled") > 0);

        // xAPIC MMIO (ICR, EOI, ID) and COM1 are slowpath exits.
        Assert.True(total.SlowpathByReason.GetValueOrDefault("APIC_ACCESS") > 0);
        Assert.True(total.SlowpathByReason.GetValueOrDefault("IO_INSTRUCTION") > 0);

        if (method == ImmediateExitMethod.PreemptionTimer)
        {
            // Every forced entry exits 52 and the fastpath handles it; the slowpath handler is never reached in L1 (I8).
            Assert.Equal(forced, total.FastpathByHandler["PreemptionTimer"].GetValueOrDefault("ExitHandled"));
            Assert.False(total.SlowpathByReason.ContainsKey("PREEMPTION_TIMER"));
            Assert.Equal(forced, total.ForcedEntries[method.ToString()].LeakHistogram[0]); // zero instructions retired, every time
        }
        else
        {
            // The reschedule IPI's exit is EXTERNAL_INTERRUPT through the slowpath.
            Assert.True(total.SlowpathByReason.GetValueOrDefault("EXTERNAL_INTERRUPT") >= forced);
        }

        var text = StatisticsText.Format(runner.LastResult.Statistics, perVcpu: true);
        Assert.Matches(@"fastpath: .*Hlt\{.*ExitHandled \d+", text);
        Assert.Matches(@"slowpath: .*APIC_ACCESS \d+", text);
        Assert.Contains($"forced[{method}]: {forced} entries", text);
    }

    [GeneratedRegex(@"kvm_entry: vcpu (\d+), rip 0x[0-9a-f]+(\[immediate exit\])?$")]
    private static partial Regex EntryLine();

    private sealed class EntryRecorder : IRunLoopObserver
    {
        private readonly ConcurrentDictionary<int, List<(bool Forced, bool Reentry, bool AfterNmiInjection)>> _entries = new();
        private readonly ConcurrentDictionary<int, bool> _nmiLoaded = new();

        public IReadOnlyList<(bool Forced, bool Reentry, bool AfterNmiInjection)> Entries(int vcpu) =>
            _entries.TryGetValue(vcpu, out var l) ? l : [];

        // Each vCPU's entries are reported from its own actor, one at a time: the list needs no lock.
        public void Entry(int vcpu, long requestsAtCheck, int modeAtCheck, bool forced, bool reentry)
        {
            var afterNmi = _nmiLoaded.TryRemove(vcpu, out _);
            _entries.GetOrAdd(vcpu, _ => []).Add((forced, reentry, afterNmi));
        }

        public void Injected(int vcpu, EventInjection injection, bool reinjected)
        {
            if (injection.Type == EventType.Nmi)
            {
                _nmiLoaded[vcpu] = true;
            }
        }

        public void Exit(int vcpu, in VmExit exit, FastpathResult fastpath, bool forced)
        {
        }

        public void EntryCancelled(int vcpu, long requestsAtCheck, int modeAtCheck) => _nmiLoaded.TryRemove(vcpu, out _);

        public void RequestServiced(int vcpu, int bit)
        {
        }

        public void BlockChanged(int vcpu, bool blocked)
        {
        }
    }
}
