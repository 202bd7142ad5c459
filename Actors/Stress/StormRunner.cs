using System.Diagnostics;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Stress;

/// <summary>
/// Runs one storm: builds the guest, runs the VM with the invariant checker installed, lets the
/// storm blow for its duration (or until the first violation), sets the guests' stop flag, waits
/// for them to drain, reads their ledger and ends the VM. Never hangs: every phase is bounded.
/// </summary>
public static class StormRunner
{
    public static async Task<StormReport> RunAsync(StormSettings settings, Action<long>? progress = null, CancellationToken cancellationToken = default)
    {
        var max = StormGuest.MaxVcpusFor(settings.Apic);
        if (settings.Vcpus < StormCatalog.MinimumVcpus(settings.Kind) || settings.Vcpus > max)
        {
            throw new ArgumentOutOfRangeException(nameof(settings), settings.Vcpus,
                $"storm {settings.Name} runs with {StormCatalog.MinimumVcpus(settings.Kind)} to {max} vCPUs");
        }

        using var checker = new InvariantChecker(settings.Seed, settings.StallBound);
        using var machine = new Machine(new MachineConfig(settings.Vcpus, MemoryMiB: 2, TscHz: settings.TscHz));
        IVmControl? control = null;
        var faults = settings.Delays || settings.BreaksProtocol || settings.Fail != FailingActor.None
            ? new FaultInjection(settings.Delays ? settings.MaxDelayMicroseconds : 0, settings.SkipEntryRecheck, settings.KickBeforeRequest, settings.Seed)
            {
                Fail = settings.Fail,
                FailAfter = settings.FailAfter,
                ShuffleDispatch = settings.Delays,
                IgnorePriority = settings.IgnorePriority,
                AcceptStraySipi = settings.AcceptStraySipi,
                DuplicateSelfIpi = settings.DuplicateSelfIpi,
            }
            : null;
        var options = new VmOptions
        {
            Vcpus = settings.Vcpus,
            ImmediateExit = StormCatalog.Method(settings.Kind),
            Dispatcher = settings.Dispatcher,
            SliceInstructions = settings.SliceInstructions,
            Observer = checker,
            ApicEvents = checker,
            Trace = settings.CheckTrace ? TraceEvents.KvmEntry : TraceEvents.None,
            TraceLogger = settings.CheckTrace ? checker.EntryTraceLogger() : null,
            Faults = faults,
            Timeout = settings.MaxDuration + settings.DrainBound + TimeSpan.FromSeconds(30),
            Load = (m, c) =>
            {
                StormGuest.Load(m, settings.Kind, settings.Vcpus, settings.Seed, settings.Apic);
                control = c;
            },
        };

        var run = VmRunner.RunAsync(machine, options, cancellationToken);

        // Start-up (actor system, JIT, INIT/SIPI of every AP) is not storm time: the clock starts
        // when every vCPU has passed the guests' barrier.
        var startBound = Stopwatch.StartNew();
        var startLimit = settings.StartBound ?? TimeSpan.FromSeconds(10 + (settings.Vcpus / 50.0));
        while (!run.IsCompleted && startBound.Elapsed < startLimit && !(settings.StopOnViolation && checker.ViolationCount > 0)
            && machine.Memory.Read32(StormLayout.Globals + StormLayout.Started) < settings.Vcpus)
        {
            await Task.WhenAny(run, Task.Delay(10, CancellationToken.None)).ConfigureAwait(false);
        }

        var started = machine.Memory.Read32(StormLayout.Globals + StormLayout.Started) >= settings.Vcpus;
        var eventsAtStart = checker.Events;
        var clock = Stopwatch.StartNew();

        // The storm.
        while (started && !run.IsCompleted && !(settings.StopOnViolation && checker.ViolationCount > 0)
            && (clock.Elapsed < settings.Duration
                || (checker.Events - eventsAtStart < settings.MinEvents && clock.Elapsed < settings.MaxDuration)))
        {
            await Task.WhenAny(run, Task.Delay(100, CancellationToken.None)).ConfigureAwait(false);
            progress?.Invoke(checker.Events);
        }

        // Stop flag, then drain: in-flight IPIs land, the last timers fire, the guests report done.
        machine.Memory.Write32(StormLayout.Globals + StormLayout.Stop, 1);
        var drainUntil = clock.Elapsed + settings.DrainBound;
        var drained = false;
        while (!run.IsCompleted && clock.Elapsed < drainUntil)
        {
            if (drained = StormLedger.Drained(machine, settings.Kind, settings.Vcpus))
            {
                break;
            }

            await Task.WhenAny(run, Task.Delay(10, CancellationToken.None)).ConfigureAwait(false);
        }

        var seconds = clock.Elapsed.TotalSeconds;
        checker.Stop();

        // A storm that did not drain: where each vCPU the ledger blames stands (a lost SIPI looks
        // different from a lost IPI or a slow host).
        var stuck = new List<string>();
        if (!drained && started)
        {
            var done = machine.Memory.Read32(StormLayout.Globals + StormLayout.Done);
            stuck.Add($"not drained within {settings.DrainBound.TotalSeconds:F1} s: {done} of {StormLedger.ExpectedDone(settings.Kind, settings.Vcpus)} vCPUs finished");
            var suspects = StormLedger.Read(machine, settings.Kind, settings.Vcpus).Suspects.Distinct().ToList();
            if (suspects.Count == 0)
            {
                suspects = [.. Enumerable.Range(0, settings.Vcpus).Where(v => !checker.Describe(v).Contains("blocked True", StringComparison.Ordinal))];
            }

            stuck.AddRange(suspects.Take(8).Select(checker.Describe));
        }
        var events = checker.Events - eventsAtStart;
        progress?.Invoke(checker.Events);
        control?.Shutdown(0, "storm over");
        var result = await run.ConfigureAwait(false);
        checker.Finish();
        var ledger = StormLedger.Read(machine, settings.Kind, settings.Vcpus);
        var expected = result.Kind == VmExitKind.Shutdown && result.ExitCode == 0;
        return new StormReport(
            settings.Name,
            settings.Vcpus,
            settings.Seed,
            settings.Delays,
            seconds,
            events,
            ledger.Received,
            ledger.Sent,
            ledger.Received,
            ledger.Lost,
            ledger.Duplicates,
            checker.ViolationCount,
            checker.Violations,
            started ? [.. ledger.Errors, .. stuck] : [$"only {machine.Memory.Read32(StormLayout.Globals + StormLayout.Started)} of {settings.Vcpus} vCPUs started within {startLimit.TotalSeconds:F0} s", .. ledger.Errors],
            drained,
            $"{result.Kind}: {result.Detail}",
            expected,
            checker.ForcedLeaks,
            checker.ForcedEntries,
            checker.Coverage)
        {
            ApicAccessExits = result.Statistics.Total.ExitsByReason.GetValueOrDefault(ExitReason.ApicAccess.TraceName()),
        };
    }
}
