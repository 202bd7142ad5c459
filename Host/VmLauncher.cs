using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;
using Serilog;

namespace ActorVm.Host;

/// <summary>
/// Builds the machine for <see cref="RunOptions"/>, boots the kernel or built-in program, runs it
/// with an <see cref="IVmRunner"/> (the seam where the actor run loop replaces the synchronous
/// <see cref="Runner"/>) and turns the outcome into a process exit status.
/// </summary>
public sealed class VmLauncher(Func<IVmRunner> runnerFactory)
{
    public const ulong MaxMemoryMiB = Hardware.Memory.GuestMemory.MaxRamSize >> 20;
    public const int MaxVcpus = 255;

    private static readonly ILogger Logger = Log.ForContext<VmLauncher>();

    public VmLauncher()
        : this(() => new Runner())
    {
    }

    /// <param name="serialOutput">Where COM1's bytes go (the process's stdout).</param>
    /// <param name="error">Where one-line errors go (stderr).</param>
    public int Launch(RunOptions options, Stream serialOutput, TextWriter error, CancellationToken cancellationToken = default)
    {
        if (Validate(options) is { } problem)
        {
            error.WriteLine($"actorvm: {problem}");
            return ExitCodes.InvalidInput;
        }

        var config = new MachineConfig(options.Vcpus, options.MemoryMiB);
        config = config with { CpuModel = CpuModelOption.Parse(options.Cpu, out _)! with { TscHz = config.TscHz } };
        using var machine = Machine.CreatePc(config, bytes =>
        {
            serialOutput.Write(bytes);
            serialOutput.Flush();
        });

        try
        {
            MultibootBootInfo boot;
            if (options.Program is { } name)
            {
                var program = GuestPrograms.Find(name)!;
                boot = MultibootLoader.Load(machine, program.Build(KernelFormat.AoutKludge), name, options.Append,
                    options.Initrd is null ? null : ReadInitrd(options.Initrd), options.Initrd);
            }
            else
            {
                boot = MultibootLoader.LoadFile(machine, options.Kernel!, options.Append, options.Initrd);
            }

            Logger.Information("booting {Kernel} ({Format}, entry 0x{Entry:x}, image 0x{Start:x}-0x{End:x}) with {Vcpus} vCPU(s) and {Memory} MiB",
                options.Program ?? options.Kernel, boot.Format, boot.Entry, boot.ImageStart, boot.ImageEnd, options.Vcpus, options.MemoryMiB);
        }
        catch (KernelLoadException e)
        {
            error.WriteLine($"actorvm: {e.Message}");
            return ExitCodes.InvalidInput;
        }

        var runner = runnerFactory();
        if (options.Vcpus > 1 && runner is Runner)
        {
            Logger.Warning("the synchronous runner runs the BSP only; {Aps} AP(s) stay in wait-for-SIPI", options.Vcpus - 1);
        }

        var limits = new RunLimits(options.MaxInstructions, options.TimeoutSeconds is { } t ? TimeSpan.FromSeconds(t) : null);
        var result = runner.Run(machine, limits, cancellationToken);
        Logger.Information("{Detail}; {Instructions} instructions in {Seconds:0.###} s ({Mips:0.#} MIPS)",
            result.Detail, result.InstructionsRetired, result.Elapsed.TotalSeconds, result.Mips);
        return ExitCodeFor(result, error);
    }

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

    /// <summary>The first problem with the options, as one line, or null.</summary>
    public static string? Validate(RunOptions o)
    {
        if (o.Kernel is null == (o.Program is null))
        {
            return "give exactly one of --kernel FILE or --program NAME";
        }

        if (o.Program is { } p && GuestPrograms.Find(p) is null)
        {
            return $"unknown program '{p}' (built-in programs: {string.Join(", ", GuestPrograms.All.Select(g => g.Name))})";
        }

        if (o.MemoryMiB < 2 || o.MemoryMiB > MaxMemoryMiB)
        {
            return $"memory size {o.MemoryMiB} MiB is out of range (2-{MaxMemoryMiB} MiB)";
        }

        if (o.Vcpus < 1 || o.Vcpus > MaxVcpus)
        {
            return $"--smp {o.Vcpus} is out of range (1-{MaxVcpus})";
        }

        if (o.TimeoutSeconds is <= 0)
        {
            return $"--timeout {o.TimeoutSeconds} must be positive";
        }

        if (o.MaxInstructions is <= 0)
        {
            return $"--max-instructions {o.MaxInstructions} must be positive";
        }

        if (CpuModelOption.Parse(o.Cpu, out var cpuError) is null)
        {
            return cpuError;
        }

        foreach (var device in o.Devices)
        {
            if (DeviceOption.Check(device) is { } deviceError)
            {
                return deviceError;
            }
        }

        return null;
    }

    private static byte[] ReadInitrd(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KernelLoadException(e is FileNotFoundException or DirectoryNotFoundException
                ? $"initrd file '{path}' not found"
                : $"initrd file '{path}' cannot be read: {e.Message}");
        }
    }
}
