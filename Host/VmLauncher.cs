using System.Text;
using System.Text.Json;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;
using ActorVm.Hardware.Guests.Smp;
using ActorVm.Host.Configuration;
using ActorVm.Host.Display;
using ActorVm.Host.Scenarios;
using ActorVm.Host.Tracing;
using ActorVm.Host.Verdict;
using Serilog;

namespace ActorVm.Host;

/// <summary>
/// <c>actorvm run</c>: resolves the settings (options, scenario, environment, appsettings.json),
/// builds the PC, boots the kernel or built-in program through the Multiboot loader, runs it on
/// the actor VM (or, through the <see cref="IVmRunner"/> seam, the synchronous runner), then
/// prints the summary and verdict on stderr, writes the requested files and returns the exit status.
/// </summary>
public sealed class VmLauncher(HostEnvironment environment, Func<IVmRunner>? runnerFactory = null)
{
    public const ulong MaxMemoryMiB = Hardware.Memory.GuestMemory.MaxRamSize >> 20;
    public const int MaxVcpus = 1024;

    /// <summary>Serial bytes kept for judging <c>expect.serial</c>.</summary>
    private const int SerialKeep = 1 << 20;

    // Not cached: each run (and each test) configures its own static logger.
    private static ILogger Logger => Log.ForContext<VmLauncher>();

    public int Launch(RunOptions options, Stream serialOutput, TextWriter error, CancellationToken cancellationToken = default)
    {
        Scenario? scenario = null;
        if (options.Scenario is { } path)
        {
            if (path.StartsWith('-'))
            {
                return Invalid(error, $"unknown option '{path}' (see --help)");
            }

            if (options.Kernel is not null || options.Program is not null)
            {
                return Invalid(error, "give a scenario file or --kernel/--program, not both");
            }

            try
            {
                scenario = ScenarioLoader.Load(path, n => GuestPrograms.Find(n) is not null);
                var extra = HostChecks.Check(path, scenario).ToList();
                if (extra.Count > 0)
                {
                    throw new ScenarioException(extra);
                }
            }
            catch (ScenarioException e)
            {
                foreach (var problem in e.Errors)
                {
                    error.WriteLine($"actorvm: {problem}");
                }

                return ExitCodes.InvalidInput;
            }
        }
        else if (options.Kernel is null == (options.Program is null))
        {
            return Invalid(error, "give a scenario file, or exactly one of --kernel FILE or --program NAME");
        }

        var problems = new List<string>();
        var settings = RunSettingsResolver.Resolve(options, scenario, environment, problems);
        problems.AddRange(Validate(settings));
        var cpuModel = CpuModelOption.Parse(options.Cpu, out var cpuError);
        if (cpuError is not null)
        {
            problems.Add(cpuError);
        }

        problems.AddRange(options.Devices.Select(DeviceOption.Check).OfType<string>());
        var traceEvents = TraceEventNames.Parse(options.TraceEvents ?? (options.TraceFile is null ? null : "all"), problems);
        if (problems.Count > 0)
        {
            foreach (var p in problems)
            {
                error.WriteLine($"actorvm: {p}");
            }

            return ExitCodes.InvalidInput;
        }

        var serialText = new StringBuilder();
        var config = new MachineConfig(settings.Vcpus, settings.MemoryMiB, settings.TscHz);
        using var machine = Machine.CreatePc(config with { CpuModel = cpuModel! with { TscHz = settings.TscHz } }, bytes =>
        {
            serialOutput.Write(bytes);
            serialOutput.Flush();
            lock (serialText)
            {
                if (serialText.Length < SerialKeep)
                {
                    serialText.Append(Encoding.Latin1.GetString(bytes));
                }
            }
        });

        try
        {
            MultibootBootInfo boot;
            if (settings.Program is { } name)
            {
                var image = GuestPrograms.Find(name)!.BuildImage(settings.Vcpus, settings.Apic, settings.TscHz, settings.ProgramArgs);
                boot = MultibootLoader.Load(machine, image, name, settings.Append, settings.Initrd is null ? null : File.ReadAllBytes(settings.Initrd), settings.Initrd);
            }
            else
            {
                boot = MultibootLoader.LoadFile(machine, settings.Kernel!, settings.Append, settings.Initrd);
            }

            Logger.Information("{Name}: booting {Kernel} ({Format}, entry 0x{Entry:x}) on {Vcpus} vCPU(s), {Memory} MiB, {Apic}, timer {Timer}, immediate exit {ImmediateExit}, {Dispatcher} dispatcher; from {Sources}",
                settings.Name, settings.Program ?? settings.Kernel, boot.Format, boot.Entry, settings.Vcpus, settings.MemoryMiB, settings.Apic, settings.Timer,
                settings.ImmediateExit, settings.Dispatcher, string.Join(", ", settings.Sources.Where(s => s.Value != SettingSource.Default).Select(s => $"{s.Key}={s.Value}")));
        }
        catch (Exception e) when (e is KernelLoadException or GuestArgumentException or IOException or UnauthorizedAccessException)
        {
            return Invalid(error, e.Message);
        }

        if (options.Synchronous || runnerFactory is not null)
        {
            return RunSynchronously(machine, settings, error, cancellationToken);
        }

        var interactive = Consoles.IsTerminal(error);
        var console = Consoles.For(error, interactive);
        var trace = options.TraceJsonFile is null ? null : new ChromeTraceRecorder(settings.Vcpus, settings.Name);
        using var traceLog = options.TraceFile is null ? null : new Serilog.LoggerConfiguration().MinimumLevel.Verbose()
            .WriteTo.File(options.TraceFile, outputTemplate: "{Message:l}{NewLine}").CreateLogger();
        using var monitor = new RunMonitor(interactive ? new ProgressDisplay(console, settings.Name, settings.TimeoutSeconds) : null);
        var vmOptions = new VmOptions
        {
            Vcpus = settings.Vcpus,
            MemoryMiB = settings.MemoryMiB,
            TscHz = settings.TscHz,
            ImmediateExit = settings.ImmediateExit,
            Timer = settings.Timer,
            Dispatcher = settings.Dispatcher,
            Trace = traceEvents,
            TraceLogger = traceLog,
            Timeout = settings.TimeoutSeconds is { } t ? TimeSpan.FromSeconds(t) : TimeSpan.FromDays(1),
            StopWhenAllHalted = true,
            MaxInstructions = settings.MaxInstructions,
            Observer = trace,
            ApicEvents = trace,
            Started = monitor.Attach,
        };

        var result = VmRunner.RunAsync(machine, vmOptions, cancellationToken).GetAwaiter().GetResult();
        monitor.Dispose();
        var guestStatus = machine.DebugExit?.ExitStatus;
        var stats = StatisticsTree.Build(result.Statistics, result.Elapsed);
        string serial;
        lock (serialText)
        {
            serial = serialText.ToString();
        }

        var verdict = ExpectationChecker.Check(settings.Expect, guestStatus, serial, stats);
        SummaryRenderer.Render(console, settings.Name, result, verdict);
        var code = ExitCodeFor(result, guestStatus, verdict);

        if (trace is not null)
        {
            trace.Write(options.TraceJsonFile!);
            Logger.Information("trace-event JSON written to {File}{Truncated} (open it in https://ui.perfetto.dev or chrome://tracing)",
                options.TraceJsonFile, trace.Truncated ? $" (truncated at {trace.MaxEvents} events)" : "");
        }

        if (options.StatsJsonFile is { } statsFile)
        {
            File.WriteAllText(statsFile, JsonSerializer.Serialize(new
            {
                scenario = settings.Name,
                outcome = result.Kind.ToString(),
                detail = result.Detail,
                exitStatus = code,
                guestExitStatus = guestStatus,
                elapsedSeconds = result.Elapsed.TotalSeconds,
                stats,
                verdict = verdict.Select(v => new { expectation = v.Expectation, met = v.Met, actual = v.Actual }),
            }, new JsonSerializerOptions { WriteIndented = true }));
        }

        return code;
    }

    /// <summary>
    /// The process status of an actor-VM run: Ctrl-C, triple fault, timeout and emulator errors
    /// first; then an unmet expectation; then the guest's debug-exit status if it used one; else 0.
    /// </summary>
    public static int ExitCodeFor(VmResult result, int? guestStatus, IReadOnlyList<ExpectationResult> verdict) => result.Kind switch
    {
        VmExitKind.Cancelled => ExitCodes.Cancelled,
        VmExitKind.TripleFault => ExitCodes.TripleFault,
        VmExitKind.Timeout or VmExitKind.InstructionLimit => ExitCodes.Timeout,
        VmExitKind.Error => ExitCodes.InternalError,
        _ when verdict.Any(v => !v.Met) => ExitCodes.ExpectationFailed,
        _ => guestStatus ?? ExitCodes.Clean,
    };

    /// <summary>The synchronous runner's status (the old path, kept behind the seam).</summary>
    public static int ExitCodeFor(RunResult result, TextWriter error)
    {
        switch (result.Outcome)
        {
            case RunOutcome.DebugExit:
                return result.DebugExitStatus ?? ExitCodes.InternalError;
            case RunOutcome.HaltedForever:
                return ExitCodes.Clean;
            case RunOutcome.Reset:
                // QEMU -no-reboot: a guest reset ends the process with status 0.
                error.WriteLine($"actorvm: {result.Detail}");
                return ExitCodes.Clean;
            case RunOutcome.TripleFault:
                error.WriteLine($"actorvm: {result.Detail}");
                return ExitCodes.TripleFault;
            case RunOutcome.InstructionLimit:
            case RunOutcome.TimeLimit:
                error.WriteLine($"actorvm: {result.Detail}");
                return ExitCodes.Timeout;
            case RunOutcome.Cancelled:
                return ExitCodes.Cancelled;
            default:
                error.WriteLine($"actorvm: {result.Detail}");
                return ExitCodes.InternalError;
        }
    }

    /// <summary>Every problem with resolved settings, one line each.</summary>
    public static IEnumerable<string> Validate(RunSettings s)
    {
        if (s.Program is { } p && GuestPrograms.Find(p) is null)
        {
            yield return $"unknown program '{p}' (built-in programs: {string.Join(", ", GuestPrograms.All.Select(g => g.Name))})";
        }

        if (s.MemoryMiB < 2 || s.MemoryMiB > MaxMemoryMiB)
        {
            yield return $"memory size {s.MemoryMiB} MiB is out of range (2-{MaxMemoryMiB} MiB)";
        }

        if (s.Vcpus < 1 || s.Vcpus > MaxVcpus)
        {
            yield return $"{s.Vcpus} vCPUs is out of range (1-{MaxVcpus})";
        }
        else if (s.Apic == GuestApicMode.XApic && s.Vcpus > ScenarioLoader.MaxXApicVcpus)
        {
            yield return $"{s.Vcpus} vCPUs cannot be addressed in xAPIC mode (at most {ScenarioLoader.MaxXApicVcpus}); use --apic x2apic";
        }

        if (s.Program is { } name && GuestPrograms.Find(name) is { BuildFor: not null } && s.MemoryMiB < SmpKernel.MinMemoryMiB)
        {
            yield return $"program '{name}' needs at least {SmpKernel.MinMemoryMiB} MiB of memory; the machine has {s.MemoryMiB}";
        }

        if (s.TimeoutSeconds is <= 0)
        {
            yield return $"timeout {s.TimeoutSeconds} s must be positive";
        }

        if (s.MaxInstructions is <= 0)
        {
            yield return $"guest-instruction limit {s.MaxInstructions} must be positive";
        }

        if (s.TscHz < 1_000_000)
        {
            yield return $"TSC frequency {s.TscHz} Hz is below 1 MHz";
        }
    }

    private int RunSynchronously(Machine machine, RunSettings settings, TextWriter error, CancellationToken cancellationToken)
    {
        if (settings.Vcpus > 1)
        {
            Logger.Warning("the synchronous runner runs the BSP only; {Aps} AP(s) stay in wait-for-SIPI", settings.Vcpus - 1);
        }

        var limits = new RunLimits(settings.MaxInstructions, settings.TimeoutSeconds is { } t ? TimeSpan.FromSeconds(t) : null);
        var result = (runnerFactory ?? (() => new Runner()))().Run(machine, limits, cancellationToken);
        Logger.Information("{Detail}; {Instructions} instructions in {Seconds:0.###} s ({Mips:0.#} MIPS)",
            result.Detail, result.InstructionsRetired, result.Elapsed.TotalSeconds, result.Mips);
        return ExitCodeFor(result, error);
    }

    private static int Invalid(TextWriter error, string message)
    {
        error.WriteLine($"actorvm: {message}");
        return ExitCodes.InvalidInput;
    }
}
