using System.CommandLine;
using System.Globalization;
using ActorVm.Hardware;
using ActorVm.Hardware.Guests;
using Microsoft.Extensions.Configuration;
using Serilog;

namespace ActorVm.Host;

/// <summary>
/// The command line: <c>run</c> (boot a Multiboot kernel or a built-in program, like
/// <c>qemu-system-x86_64 -kernel FILE -nographic -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x4</c>),
/// <c>programs</c> (list the built-in guests) and <c>guest</c> (write a built-in guest as a kernel file,
/// e.g. to run it on QEMU). stdout carries only the guest's serial bytes; everything else goes to stderr.
/// </summary>
public static class HostApp
{
    public static int RunConsole(string[] args)
    {
        using var stdout = Console.OpenStandardOutput();
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        return Run(args, stdout, Console.Out, Console.Error, cts.Token);
    }

    /// <summary>Runs the command line with the given streams (tests call this directly).</summary>
    /// <param name="serial">Raw stdout: the guest's serial bytes.</param>
    /// <param name="text">Text stdout for --help, --version and listings (never used while a VM runs).</param>
    /// <param name="runnerFactory">What runs the VM (the seam for the actor run loop); the synchronous <see cref="Runner"/> by default.</param>
    public static int Run(string[] args, Stream serial, TextWriter text, TextWriter error, CancellationToken cancellationToken = default,
        Func<IVmRunner>? runnerFactory = null)
    {
        ConfigureLogging();
        try
        {
            var root = BuildCommandLine(serial, text, error, cancellationToken, runnerFactory ?? (() => new Runner()));
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0)
            {
                error.WriteLine($"actorvm: {parse.Errors[0].Message} (see --help)");
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

    private static void ConfigureLogging()
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables("ACTORVM_")
            .Build();
        var logger = new LoggerConfiguration().ReadFrom.Configuration(configuration);
        if (!configuration.GetSection("Serilog:WriteTo").Exists())
        {
            logger = logger.WriteTo.Console(standardErrorFromLevel: Serilog.Events.LogEventLevel.Verbose);
        }

        Log.Logger = logger.CreateLogger();
    }

    private static RootCommand BuildCommandLine(Stream serial, TextWriter text, TextWriter error, CancellationToken cancellationToken,
        Func<IVmRunner> runnerFactory)
    {
        var kernel = new Option<string>("--kernel") { Description = "Multiboot kernel image (ELF32, ELF64 or a.out kludge)" };
        var program = new Option<string>("--program") { Description = "a built-in guest program instead of a kernel file (see `programs`)" };
        var memory = new Option<ulong>("-m", "--memory") { Description = "guest RAM in MiB", DefaultValueFactory = _ => 128 };
        var smp = new Option<int>("--smp") { Description = "number of vCPUs", DefaultValueFactory = _ => 1 };
        var append = new Option<string>("--append") { Description = "kernel command line arguments" };
        var initrd = new Option<string>("--initrd") { Description = "file passed as Multiboot module 0" };
        var timeout = new Option<double?>("--timeout") { Description = "stop after this many seconds of wall time (exit status 6)" };
        var maxInstructions = new Option<long?>("--max-instructions") { Description = "stop after this many guest instructions (exit status 6)" };

        var run = new Command("run", "boot a Multiboot kernel or a built-in program; stdout is the guest's COM1")
        {
            kernel, program, memory, smp, append, initrd, timeout, maxInstructions,
        };
        run.SetAction(p => new VmLauncher(runnerFactory).Launch(new RunOptions
        {
            Kernel = p.GetValue(kernel),
            Program = p.GetValue(program),
            MemoryMiB = p.GetValue(memory),
            Vcpus = p.GetValue(smp),
            Append = p.GetValue(append),
            Initrd = p.GetValue(initrd),
            TimeoutSeconds = p.GetValue(timeout),
            MaxInstructions = p.GetValue(maxInstructions),
        }, serial, error, cancellationToken));

        var programs = new Command("programs", "list the built-in guest programs");
        programs.SetAction(_ =>
        {
            foreach (var g in GuestPrograms.All)
            {
                text.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{g.Name,-20} {g.Description}"));
            }

            return 0;
        });

        var guestName = new Argument<string>("name") { Description = "built-in program name" };
        var output = new Option<string>("-o", "--output") { Description = "file to write", Required = true };
        var format = new Option<string>("--format") { Description = "aout | elf32 | elf64", DefaultValueFactory = _ => "aout" };
        var guest = new Command("guest", "write a built-in guest program as a Multiboot kernel file (QEMU takes aout and elf32)")
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

            KernelFormat? f = p.GetValue(format) switch
            {
                "aout" => KernelFormat.AoutKludge,
                "elf32" => KernelFormat.Elf32,
                "elf64" => KernelFormat.Elf64,
                _ => null,
            };
            if (f is null)
            {
                error.WriteLine($"actorvm: unknown format '{p.GetValue(format)}' (aout, elf32 or elf64)");
                return ExitCodes.InvalidInput;
            }

            File.WriteAllBytes(p.GetValue(output)!, g.Build(f.Value));
            return 0;
        });

        return new RootCommand("ActorVm: a multi-vCPU x86 virtual machine emulator")
        {
            run, programs, guest, Commands.StressCommand.Create(text, error, cancellationToken),
        };
    }
}
