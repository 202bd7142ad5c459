using System.CommandLine;
using System.Globalization;
using ActorVm.Hardware;
using ActorVm.Hardware.Guests;
using ActorVm.Host.Configuration;
using ActorVm.Host.Scenarios;
using Microsoft.Extensions.Configuration;
using Serilog;

namespace ActorVm.Host;

/// <summary>
/// The command line, shaped after QEMU's: <c>run</c> (a scenario file, or
/// <c>--kernel FILE</c>/<c>--program NAME</c> like <c>qemu-system-x86_64 -kernel FILE -smp N -m MiB
/// -append … -nographic -serial stdio -device isa-debug-exit</c>), <c>list</c> (scenarios in
/// configs/ and built-in programs), <c>validate FILE...</c>, <c>programs</c>, <c>guest</c> (write a
/// built-in guest as a kernel file). stdout carries only the guest's serial bytes; logs, the
/// progress display and the summary go to stderr.
/// </summary>
public static class HostApp
{
    public static int RunConsole(string[] args)
    {
        using var stdout = Console.OpenStandardOutput();
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            // First Ctrl-C stops the VM (within a slice) and still prints the summary; a second one kills the process.
            e.Cancel = !cts.IsCancellationRequested;
            cts.Cancel();
        };
        return Run(args, stdout, Console.Out, Console.Error, cts.Token);
    }

    /// <summary>Runs the command line with the given streams (tests call this directly).</summary>
    /// <param name="serial">Raw stdout: the guest's serial bytes.</param>
    /// <param name="text">Text stdout for --help, --version and listings (never used while a VM runs).</param>
    /// <param name="runnerFactory">The <see cref="IVmRunner"/> seam: when given, <c>run</c> uses it instead of the actor VM.</param>
    /// <param name="environment">appsettings.json and ACTORVM_ variables; the process's by default.</param>
    public static int Run(string[] args, Stream serial, TextWriter text, TextWriter error, CancellationToken cancellationToken = default,
        Func<IVmRunner>? runnerFactory = null, HostEnvironment? environment = null)
    {
        environment ??= HostEnvironment.Current();
        ConfigureLogging(environment, error);
        try
        {
            var root = BuildCommandLine(serial, text, error, cancellationToken, runnerFactory, environment);
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0)
            {
                foreach (var e in parse.Errors)
                {
                    error.WriteLine($"actorvm: {e.Message}");
                }

                error.WriteLine("actorvm: see --help");
                return ExitCodes.InvalidInput;
            }

            return parse.Invoke(new InvocationConfiguration { Output = text, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            Log.Fatal(e, "internal error");
            error.WriteLine($"actorvm: internal error: {e.GetType().Name}: {e.Message}");
            return ExitCodes.InternalError;
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }

    /// <summary>Serilog from appsettings.json's Serilog section, overridable by ACTORVM_Serilog__… variables; never stdout.</summary>
    private static void ConfigureLogging(HostEnvironment environment, TextWriter error)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(environment.AppSettingsPath, optional: true)
            .AddInMemoryCollection(environment.Variables
                .Where(kv => kv.Key.StartsWith(HostEnvironment.Prefix + "Serilog__", StringComparison.OrdinalIgnoreCase))
                .Select(kv => new KeyValuePair<string, string?>(kv.Key[HostEnvironment.Prefix.Length..].Replace("__", ":", StringComparison.Ordinal), kv.Value)))
            .Build();
        var logger = new LoggerConfiguration().ReadFrom.Configuration(configuration, new Serilog.Settings.Configuration.ConfigurationReaderOptions { SectionName = "Serilog" });
        if (!configuration.GetSection("Serilog:WriteTo").Exists() || !ReferenceEquals(error, Console.Error))
        {
            // Tests (and any caller with its own error writer) get the log lines in that writer.
            logger = new LoggerConfiguration().MinimumLevel.Information()
                .WriteTo.Sink(new TextWriterSink(error));
        }

        Log.Logger = logger.CreateLogger();
    }

    private static RootCommand BuildCommandLine(Stream serial, TextWriter text, TextWriter error, CancellationToken cancellationToken,
        Func<IVmRunner>? runnerFactory, HostEnvironment environment)
    {
        var scenario = new Argument<string?>("scenario") { Description = "scenario file (configs/*.json); or use --kernel/--program", Arity = ArgumentArity.ZeroOrOne };
        // QEMU's single-dash spellings are aliases, so a qemu-system-x86_64 command line runs with
        // only the program name changed (README, "QEMU command lines").
        var kernel = new Option<string>("-kernel", "--kernel") { Description = "(or --kernel) Multiboot kernel image (ELF32, ELF64 or a.out kludge), like qemu -kernel" };
        var program = new Option<string>("--program") { Description = "a built-in guest program instead of a kernel file (see `list`)" };
        var memory = new Option<ulong?>("-m", "--memory") { Description = "guest RAM in MiB (default 128)" };
        var smp = new Option<int?>("-smp", "--smp") { Description = "(or --smp) number of vCPUs (default 1)" };
        var append = new Option<string>("-append", "--append") { Description = "(or --append) kernel command line" };
        var initrd = new Option<string>("-initrd", "--initrd") { Description = "(or --initrd) file passed as Multiboot module 0" };
        var cpu = new Option<string>("-cpu", "--cpu")
        {
            Description = $"(or --cpu) CPU model and features, QEMU style: max | qemu64, then ,+feature / ,-feature ({string.Join(", ", CpuModelOption.FeatureNames)})",
            DefaultValueFactory = _ => "max",
        };
        var device = new Option<string[]>("-device", "--device")
        {
            Description = $"(or --device) QEMU -device for the test devices the machine has: {DeviceOption.Supported}; others are rejected",
            AllowMultipleArgumentsPerToken = false,
        };
        var noGraphic = new Option<bool>("-nographic") { Description = "accepted for QEMU compatibility (there is no display)" };
        var noReboot = new Option<bool>("-no-reboot") { Description = "accepted for QEMU compatibility (a guest reset always ends the run, exit status 0)" };
        var serialBackend = new Option<string>("-serial") { Description = "accepted for QEMU compatibility: only 'stdio' (COM1 is stdout)" };
        serialBackend.AcceptOnlyFromAmong("stdio");
        var display = new Option<string>("-display") { Description = "accepted for QEMU compatibility: only 'none'" };
        display.AcceptOnlyFromAmong("none");
        var qemuMonitor = new Option<string>("-monitor") { Description = "accepted for QEMU compatibility: only 'none'" };
        qemuMonitor.AcceptOnlyFromAmong("none");
        var apic = new Option<string>("--apic") { Description = "xapic | x2apic: how built-in programs reach the LAPIC (default x2apic)" };
        apic.AcceptOnlyFromAmong("xapic", "x2apic");
        var timer = new Option<string>("--timer") { Description = "hv | sw: LAPIC timer on the VMX preemption timer or a host timer (default hv)" };
        timer.AcceptOnlyFromAmong("hv", "sw");
        var immediateExit = new Option<string>("--immediate-exit") { Description = "preemption-timer | self-ipi: how forced immediate exits are made (default preemption-timer)" };
        immediateExit.AcceptOnlyFromAmong("preemption-timer", "self-ipi");
        var dispatcher = new Option<string>("--dispatcher") { Description = "shared | pinned: Akka dispatcher of the vCPU actors (default shared)" };
        dispatcher.AcceptOnlyFromAmong("shared", "pinned");
        var trace = new Option<string>("--trace") { Description = "write KVM tracepoint lines (trace-cmd/perf format) to FILE" };
        var traceEvents = new Option<string>("--trace-events") { Description = $"comma-separated tracepoints for --trace: {string.Join(", ", TraceEventNames.Names.Keys)} (default all)" };
        var traceJson = new Option<string>("--trace-json") { Description = "write a Chrome trace-event JSON (Perfetto, chrome://tracing) to FILE" };
        var statsJson = new Option<string>("--stats-json") { Description = "write statistics and verdict as JSON to FILE" };
        var timeout = new Option<double?>("--timeout") { Description = "stop after this many seconds of wall time (exit status 6)" };
        var maxInstructions = new Option<long?>("--max-instructions") { Description = "stop after this many guest instructions (exit status 6)" };
        var sync = new Option<bool>("--sync") { Description = "run on the synchronous single-vCPU runner instead of the actor VM" };

        var run = new Command("run", "run a scenario file, or boot a Multiboot kernel or built-in program; stdout is the guest's COM1")
        {
            scenario, kernel, program, memory, smp, append, initrd, apic, timer, immediateExit, dispatcher, trace, traceEvents, traceJson, statsJson, timeout, maxInstructions, sync,
            cpu, device, noGraphic, noReboot, serialBackend, display, qemuMonitor,
        };
        run.SetAction(p => new VmLauncher(environment, runnerFactory).Launch(new RunOptions
        {
            Scenario = p.GetValue(scenario),
            Kernel = p.GetValue(kernel),
            Program = p.GetValue(program),
            MemoryMiB = p.GetValue(memory),
            Vcpus = p.GetValue(smp),
            Append = p.GetValue(append),
            Initrd = p.GetValue(initrd),
            Apic = p.GetValue(apic),
            Timer = p.GetValue(timer),
            ImmediateExit = p.GetValue(immediateExit),
            Dispatcher = p.GetValue(dispatcher),
            TraceFile = p.GetValue(trace),
            TraceEvents = p.GetValue(traceEvents),
            TraceJsonFile = p.GetValue(traceJson),
            StatsJsonFile = p.GetValue(statsJson),
            TimeoutSeconds = p.GetValue(timeout),
            MaxInstructions = p.GetValue(maxInstructions),
            Synchronous = p.GetValue(sync),
            Cpu = p.GetValue(cpu) ?? "max",
            Devices = p.GetValue(device) ?? [],
        }, serial, error, cancellationToken));

        var dir = new Option<string>("--dir") { Description = "scenario folder (default: the nearest configs/ above the working directory)" };
        var list = new Command("list", "list the scenarios in configs/ with their descriptions, and the built-in programs") { dir };
        list.SetAction(p =>
        {
            var folder = p.GetValue(dir) ?? ScenarioCatalog.FindConfigsDirectory();
            if (folder is null || !Directory.Exists(folder))
            {
                error.WriteLine($"actorvm: no scenario folder {(folder is null ? "found (use --dir)" : $"'{folder}'")}");
                return ExitCodes.InvalidInput;
            }

            text.WriteLine($"Scenarios in {folder} (run one with `actorvm run FILE`):");
            foreach (var (file, name, description) in ScenarioCatalog.List(folder))
            {
                text.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {Path.GetFileName(file),-32} {description}"));
            }

            text.WriteLine();
            WritePrograms(text);
            return 0;
        });

        var files = new Argument<string[]>("files") { Description = "scenario files", Arity = ArgumentArity.OneOrMore };
        var validate = new Command("validate", "check scenario files without running them; every problem is listed; exit status 2 if any") { files };
        validate.SetAction(p =>
        {
            var bad = 0;
            foreach (var file in p.GetValue(files)!)
            {
                if (file.EndsWith(".schema.json", StringComparison.Ordinal))
                {
                    text.WriteLine($"{file}: skipped (the schema, not a scenario)");
                    continue;
                }

                try
                {
                    var s = ScenarioLoader.Load(file, n => GuestPrograms.Find(n) is not null);
                    var problems = HostChecks.Check(file, s).ToList();
                    if (problems.Count > 0)
                    {
                        throw new ScenarioException(problems);
                    }

                    text.WriteLine($"{file}: ok ({s.Name})");
                }
                catch (ScenarioException e)
                {
                    bad++;
                    foreach (var problem in e.Errors)
                    {
                        error.WriteLine(problem.ToString());
                    }
                }
            }

            return bad == 0 ? 0 : ExitCodes.InvalidInput;
        });

        var programs = new Command("programs", "list the built-in guest programs and their arguments");
        programs.SetAction(_ =>
        {
            WritePrograms(text);
            return 0;
        });

        var guestName = new Argument<string>("name") { Description = "built-in program name" };
        var output = new Option<string>("-o", "--output") { Description = "file to write", Required = true };
        var format = new Option<string>("--format") { Description = "aout | elf32 | elf64", DefaultValueFactory = _ => "aout" };
        format.AcceptOnlyFromAmong("aout", "elf32", "elf64");
        var guest = new Command("guest", "write a built-in guest program (default arguments, one vCPU) as a Multiboot kernel file (QEMU takes aout and elf32)")
        {
            guestName, output, format,
        };
        guest.SetAction(p =>
        {
            var name = p.GetValue(guestName)!;
            if (GuestPrograms.Find(name) is not { } g)
            {
                error.WriteLine($"actorvm: unknown program '{name}' (built-in programs: {string.Join(", ", GuestPrograms.All.Select(x => x.Name))})");
                return ExitCodes.InvalidInput;
            }

            var f = p.GetValue(format) switch
            {
                "elf32" => KernelFormat.Elf32,
                "elf64" => KernelFormat.Elf64,
                _ => KernelFormat.AoutKludge,
            };
            File.WriteAllBytes(p.GetValue(output)!, g.Build(f));
            return 0;
        });

        return new RootCommand("ActorVm: a multi-vCPU x86 virtual machine emulator on an Akka.NET actor system, following KVM's x86 run loop")
        {
            run, list, validate, programs, guest, Commands.StressCommand.Create(text, error, cancellationToken),
        };
    }

    private static void WritePrograms(TextWriter text)
    {
        text.WriteLine("Built-in programs (`run --program NAME`, or \"guest\": {\"program\": {\"name\": …, \"args\": {…}}} in a scenario):");
        foreach (var g in GuestPrograms.All)
        {
            text.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {g.Name,-20} {g.Description}"));
            foreach (var a in g.Parameters)
            {
                text.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"",-22}{a.Name} = {a.Default}: {a.Description}"));
            }
        }
    }
}
