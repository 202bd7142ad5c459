using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ActorVm.Actors.Stress;

namespace ActorVm.Host.Commands;

/// <summary>
/// <c>actorvm stress</c>: runs the concurrency storms of issue 6 with the invariant checker,
/// prints a live event count on stderr and a final table (storm, vCPUs, events, events/s,
/// violations, lost) on stdout — a stress run has no guest serial output — and exits non-zero
/// on any violation, loss or duplicate. <c>--json</c> writes the same table with the seed.
/// </summary>
public static class StressCommand
{
    /// <summary>Exit status when a storm found a violation, a lost or duplicated interrupt, or did not drain (even, like the host's other statuses).</summary>
    public const int ViolationFound = 10;

    /// <summary>
    /// The negative controls <c>--break</c> accepts, each a FaultInjection switch that breaks one
    /// rule on purpose, with the invariant it must be reported as and the storm that shows it.
    /// </summary>
    public static readonly IReadOnlyList<(string Name, string Invariant, string Storm)> BrokenProtocols =
    [
        ("skip-recheck", "I2", "all-to-all"),
        ("kick-before-request", "I1/I4", "ping-pong"),
        ("ignore-priority", "I11", "mixed"),
        ("accept-stray-sipi", "I14", "sipi-race"),
        ("duplicate-self-ipi", "I13", "self-ipi"),
    ];

    public static Command Create(TextWriter text, TextWriter error, CancellationToken cancellationToken)
    {
        var storm = new Option<string>("--storm") { Description = $"storm to run, or all ({string.Join(", ", StormCatalog.All.Select(s => s.Name))})", DefaultValueFactory = _ => "all" };
        var vcpus = new Option<int>("--vcpus") { Description = "vCPUs per storm (1-4096)", DefaultValueFactory = _ => 4 };
        var seconds = new Option<double>("--seconds") { Description = "storm duration in seconds (each storm)", DefaultValueFactory = _ => 5 };
        var seed = new Option<int?>("--seed") { Description = "seed of the guest programs and fault injection (default: random, printed)" };
        var delays = new Option<bool>("--delays") { Description = "random host-side delays at the race windows and shuffled dispatch" };
        var maxDelay = new Option<int>("--max-delay-us") { Description = "largest injected delay in microseconds", DefaultValueFactory = _ => 50 };
        var breakProtocol = new Option<string?>("--break", "--break-protocol")
        {
            Description = "(or --break-protocol) negative control, the run must report violations: "
                + string.Join(" | ", BrokenProtocols.Select(b => $"{b.Name} ({b.Invariant}; storm {b.Storm})")),
        };
        var tscMhz = new Option<int>("--tsc-mhz") { Description = "the guests' TSC frequency in MHz (10-10000); the timer storms re-arm 2,000-20,000 ticks ahead", DefaultValueFactory = _ => 2000 };
        var json = new Option<string?>("--json") { Description = "also write the results (with the seed) to this JSON file" };
        var apic = new Option<string>("--apic") { Description = "LAPIC interface the guests program: x2apic (MSRs) or xapic (MMIO page at 0xFEE00000, up to 255 vCPUs)", DefaultValueFactory = _ => "x2apic" };
        var noTraceCheck = new Option<bool>("--no-trace-check") { Description = "do not trace kvm_entry for the checker's I9 rule (saves a formatted line per entry)" };
        var command = new Command("stress", "run concurrency storms under the run-loop invariant checker")
        {
            storm, vcpus, seconds, seed, delays, maxDelay, breakProtocol, tscMhz, json, apic, noTraceCheck,
        };
        command.SetAction(p => Run(
            new Choice(p.GetValue(storm)!, p.GetValue(apic)!, p.GetValue(breakProtocol), !p.GetValue(noTraceCheck), p.GetValue(tscMhz)),
            p.GetValue(vcpus), p.GetValue(seconds), p.GetValue(seed) ?? Random.Shared.Next(),
            p.GetValue(delays), p.GetValue(maxDelay), p.GetValue(json), text, error, cancellationToken));
        return command;
    }

    /// <summary>The storm, interface, negative control, trace check and guest TSC the user picked (as typed).</summary>
    private sealed record Choice(string Storm, string Apic, string? Break, bool CheckTrace, int TscMhz);

    private static int Run(Choice choice, int vcpus, double seconds, int seed, bool delays, int maxDelay,
        string? jsonPath, TextWriter text, TextWriter error, CancellationToken cancellationToken)
    {
        var (stormName, breakProtocol) = (choice.Storm, choice.Break);
        StormApicMode apicMode;
        if (string.Equals(choice.Apic, "x2apic", StringComparison.OrdinalIgnoreCase))
        {
            apicMode = StormApicMode.X2Apic;
        }
        else if (string.Equals(choice.Apic, "xapic", StringComparison.OrdinalIgnoreCase))
        {
            apicMode = StormApicMode.XApic;
        }
        else
        {
            error.WriteLine($"actorvm: unknown --apic '{choice.Apic}' (x2apic or xapic)");
            return ExitCodes.InvalidInput;
        }

        List<StormKind> storms;
        if (string.Equals(stormName, "all", StringComparison.OrdinalIgnoreCase))
        {
            storms = [.. StormCatalog.All.Select(s => s.Kind).Where(k => vcpus >= StormCatalog.MinimumVcpus(k))];
        }
        else if (StormCatalog.Find(stormName) is { } kind)
        {
            storms = [kind];
        }
        else
        {
            error.WriteLine($"actorvm: unknown storm '{stormName}' (storms: all, {string.Join(", ", StormCatalog.All.Select(s => s.Name))})");
            return ExitCodes.InvalidInput;
        }

        if (breakProtocol is not null && !BrokenProtocols.Any(b => b.Name == breakProtocol))
        {
            error.WriteLine($"actorvm: unknown --break '{breakProtocol}' ({string.Join(", ", BrokenProtocols.Select(b => b.Name))})");
            return ExitCodes.InvalidInput;
        }

        if (choice.TscMhz is < 10 or > 10_000)
        {
            error.WriteLine($"actorvm: --tsc-mhz must be 10-10000 (got {choice.TscMhz})");
            return ExitCodes.InvalidInput;
        }

        var maxVcpus = StormGuest.MaxVcpusFor(apicMode);
        if (vcpus < 1 || vcpus > maxVcpus || seconds <= 0 || maxDelay < 0)
        {
            error.WriteLine($"actorvm: --vcpus must be 1-{maxVcpus} (with --apic {choice.Apic.ToLowerInvariant()}), --seconds > 0, --max-delay-us >= 0");
            return ExitCodes.InvalidInput;
        }

        if (storms.Any(k => vcpus < StormCatalog.MinimumVcpus(k)))
        {
            error.WriteLine($"actorvm: storm {stormName} needs at least {StormCatalog.MinimumVcpus(storms[0])} vCPUs");
            return ExitCodes.InvalidInput;
        }

        error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stress: seed {seed}, {vcpus} vCPUs, {seconds} s per storm{(apicMode == StormApicMode.XApic ? ", xAPIC MMIO" : "")}{(delays ? ", delays on" : "")}{(choice.CheckTrace ? "" : ", no trace check (I9)")}{(choice.TscMhz == 2000 ? "" : $", guest TSC {choice.TscMhz} MHz")}{(breakProtocol is null ? "" : $", protocol broken: {breakProtocol}")}"));
        var reports = new List<StormReport>();
        foreach (var kind in storms)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                break;
            }

            var settings = new StormSettings(kind, vcpus, TimeSpan.FromSeconds(seconds), seed)
            {
                Delays = delays,
                MaxDelayMicroseconds = maxDelay,
                SkipEntryRecheck = breakProtocol == "skip-recheck",
                KickBeforeRequest = breakProtocol == "kick-before-request",
                IgnorePriority = breakProtocol == "ignore-priority",
                AcceptStraySipi = breakProtocol == "accept-stray-sipi",
                DuplicateSelfIpi = breakProtocol == "duplicate-self-ipi",
                TscHz = (ulong)choice.TscMhz * 1_000_000,
                StallBound = TimeSpan.FromMilliseconds(Math.Max(500, vcpus)),
                DrainBound = TimeSpan.FromSeconds(3 + (vcpus / 100.0)),
                Apic = apicMode,
                CheckTrace = choice.CheckTrace,
            };
            var name = settings.Name;
            var report = StormRunner.RunAsync(settings, events => error.Write($"\r{name}: {events:N0} events   "), cancellationToken)
                .GetAwaiter().GetResult();
            error.WriteLine();
            foreach (var v in report.Violations.Take(5))
            {
                error.WriteLine($"  {v}");
            }

            foreach (var e in report.GuestErrors.Take(5))
            {
                error.WriteLine($"  guest ledger: {e}");
            }

            if (!report.OutcomeExpected)
            {
                error.WriteLine($"  VM ended: {report.Outcome}");
            }

            error.WriteLine($"  checked: {report.Coverage}");

            reports.Add(report);
        }

        StressTable.Write(text, reports);
        if (jsonPath is not null)
        {
            File.WriteAllText(jsonPath, JsonSerializer.Serialize(new
            {
                seed,
                vcpus,
                seconds,
                delays,
                apic = apicMode == StormApicMode.XApic ? "xapic" : "x2apic",
                traceCheck = choice.CheckTrace,
                tscMhz = choice.TscMhz,
                broken = breakProtocol,
                storms = reports.Select(r => new
                {
                    storm = r.Storm,
                    vcpus = r.Vcpus,
                    seed = r.Seed,
                    events = r.Events,
                    eventsPerSecond = Math.Round(r.EventsPerSecond),
                    seconds = Math.Round(r.Seconds, 3),
                    guestInterrupts = r.GuestInterrupts,
                    sent = r.Sent,
                    received = r.Received,
                    violations = r.ViolationCount,
                    lost = r.Lost,
                    duplicates = r.Duplicates,
                    drained = r.Drained,
                    forcedEntries = r.ForcedEntries,
                    forcedLeaks = r.ForcedLeaks,
                    apicAccessExits = r.ApicAccessExits,
                    checkedEvents = r.Coverage,
                    outcome = r.Outcome,
                    passed = r.Passed,
                    firstViolations = r.Violations.Take(5).Select(v => v.ToString()),
                    guestErrors = r.GuestErrors.Take(5),
                }),
            }, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
        }

        return reports.Count == storms.Count && reports.All(r => r.Passed) ? ExitCodes.Clean : ViolationFound;
    }
}
