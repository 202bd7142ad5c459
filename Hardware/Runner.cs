using System.Diagnostics;
using ActorVm.Hardware.Exits;
using ActorVm.Hardware.X86;
using Serilog;

namespace ActorVm.Hardware;

/// <summary>Why a run ended.</summary>
public enum RunOutcome
{
    /// <summary>The guest wrote the debug-exit port; <see cref="RunResult.DebugExitStatus"/> holds the status.</summary>
    DebugExit,

    /// <summary>Every vCPU halted with nothing that could wake it (a clean stop).</summary>
    HaltedForever,

    /// <summary>The guest reset the machine (0xCF9, 0x64, 0x92, 0x8900); the run ends like QEMU's -no-reboot.</summary>
    Reset,

    /// <summary>A triple fault shut the machine down.</summary>
    TripleFault,

    /// <summary>The guest-instruction limit was reached.</summary>
    InstructionLimit,

    /// <summary>The wall-time limit was reached.</summary>
    TimeLimit,

    /// <summary>The run was cancelled from outside (Ctrl-C).</summary>
    Cancelled,

    /// <summary>An exit the runner has no handler for.</summary>
    UnhandledExit,
}

/// <summary>Limits of one run; null means unlimited.</summary>
public sealed record RunLimits(long? MaxInstructions = null, TimeSpan? WallTime = null);

/// <summary>The end of a run: why, the debug-exit status if any, and what it cost.</summary>
public sealed record RunResult(RunOutcome Outcome, int? DebugExitStatus, long InstructionsRetired, TimeSpan Elapsed, string Detail)
{
    public double Mips => Elapsed.TotalSeconds > 0 ? InstructionsRetired / Elapsed.TotalSeconds / 1e6 : 0;
}

/// <summary>
/// The seam between "a machine ready to run" and whatever runs its vCPUs: the synchronous
/// <see cref="Runner"/> now, the actor run loop later.
/// </summary>
public interface IVmRunner
{
    RunResult Run(Machine machine, RunLimits limits, CancellationToken cancellationToken = default);
}

/// <summary>
/// Handles an exit the runner does not know itself (CPUID, the APIC page, …): returns the next
/// exit if completing the instruction ran into one, or null; throws to stop the run.
/// </summary>
public delegate VmExit? ExitHandler(Cpu cpu, in VmExit exit);

/// <summary>
/// A synchronous, single-vCPU run loop without actors, for Hardware tests, benchmarks and the
/// host until the actor run loop lands: enters the BSP in slices and handles port I/O (COM1,
/// debug-exit), CPUID, RDMSR/WRMSR of core MSRs (APIC MSRs #GP: no APIC here), unclaimed MMIO, HLT and triple fault, under
/// instruction and wall-time limits. APs are never started (INIT/SIPI need the APIC and the actors).
/// </summary>
public sealed class Runner : IVmRunner
{
    /// <summary>Instructions per slice: the granularity of limit and cancellation checks.</summary>
    public const long SliceInstructions = 1_000_000;

    private static readonly ILogger Logger = Log.ForContext<Runner>();

    /// <summary>Extra exit handlers by reason (e.g. the APIC page once an APIC is attached); they override the built-in CPUID/MSR handling.</summary>
    public Dictionary<ExitReason, ExitHandler> Handlers { get; } = [];

    public RunResult Run(Machine machine, RunLimits limits, CancellationToken cancellationToken = default)
    {
        var cpu = machine.Cpus[0];
        var stopwatch = Stopwatch.StartNew();
        var startRetired = cpu.InstructionsRetired;
        var maxInstructions = limits.MaxInstructions ?? long.MaxValue;
        EventInjection? injection = null;

        RunResult Result(RunOutcome outcome, string detail) =>
            new(outcome, machine.DebugExit?.ExitStatus, cpu.InstructionsRetired - startRetired, stopwatch.Elapsed, detail);

        while (true)
        {
            if (machine.DebugExit?.ExitStatus is { } status)
            {
                return Result(RunOutcome.DebugExit, $"debug-exit: status {status}");
            }

            if (machine.Platform?.SystemControl.Requested is { } reset)
            {
                return Result(RunOutcome.Reset, $"reset by the guest ({reset}); not rebooting");
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return Result(RunOutcome.Cancelled, "cancelled");
            }

            var retired = cpu.InstructionsRetired - startRetired;
            if (retired >= maxInstructions)
            {
                return Result(RunOutcome.InstructionLimit, $"instruction limit of {maxInstructions} reached at rip 0x{cpu.Rip:x}");
            }

            if (limits.WallTime is { } wall && stopwatch.Elapsed >= wall)
            {
                return Result(RunOutcome.TimeLimit, $"time limit of {wall.TotalSeconds:0.###} s reached at rip 0x{cpu.Rip:x}");
            }

            var budget = Math.Min(SliceInstructions, maxInstructions - retired);
            VmExit? next = cpu.Run(new VmEntry(Injection: injection, InstructionBudget: budget));
            injection = null;
            while (next is { } exit)
            {
                next = null;
                switch (exit.Reason)
                {
                    case ExitReason.ExternalInterrupt:
                    case ExitReason.PreemptionTimer:
                        break; // end of slice: loop checks the limits

                    case ExitReason.IoInstruction:
                        next = PortIoExit.Handle(cpu, machine.Io, exit);
                        break;

                    case ExitReason.EptViolation:
                        next = UnclaimedMmioExit.Handle(cpu, exit, machine.UnclaimedMmio);
                        break;

                    case ExitReason.Cpuid when !Handlers.ContainsKey(exit.Reason):
                        next = CpuidExit.Handle(cpu);
                        break;

                    case ExitReason.MsrRead or ExitReason.MsrWrite when !Handlers.ContainsKey(exit.Reason):
                        switch (MsrExit.Handle(cpu, exit, out next))
                        {
                            case MsrExitResult.Fault:
                                injection = MsrExit.GeneralProtection;
                                break;
                            case MsrExitResult.ApicMsr:
                                // No local APIC in the synchronous runner: its MSRs fault as absent.
                                MsrExit.Fail(cpu);
                                injection = MsrExit.GeneralProtection;
                                break;
                        }

                        break;

                    case ExitReason.Hlt:
                        cpu.Complete();
                        if (machine.DebugExit?.IsRequested == true || machine.Platform?.SystemControl.Requested is not null)
                        {
                            break;
                        }

                        // Nothing in the synchronous runner can interrupt a halted vCPU (no
                        // APIC timer, no devices raising IRQs), so a halt is final either way.
                        return Result(RunOutcome.HaltedForever,
                            $"halted forever at rip 0x{cpu.Rip:x} (IF={(cpu.IF ? 1 : 0)}, nothing can wake the vCPU)");

                    case ExitReason.TripleFault:
                        return Result(RunOutcome.TripleFault, $"triple fault: shutdown at rip 0x{cpu.Rip:x}");

                    default:
                        if (Handlers.TryGetValue(exit.Reason, out var handler))
                        {
                            next = handler(cpu, exit);
                            break;
                        }

                        Logger.Error("vcpu 0: unhandled exit {Reason} at rip 0x{Rip:x}", exit.Reason.TraceName(), cpu.Rip);
                        return Result(RunOutcome.UnhandledExit, $"unhandled exit {exit.Reason.TraceName()} at rip 0x{cpu.Rip:x}");
                }

                if (machine.DebugExit?.IsRequested == true || machine.Platform?.SystemControl.Requested is not null)
                {
                    break;
                }
            }
        }
    }
}
