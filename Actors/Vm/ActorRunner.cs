using ActorVm.Hardware;

namespace ActorVm.Actors.Vm;

/// <summary>
/// The actor run loop behind the platform's <see cref="IVmRunner"/> seam, so the host's
/// <c>run</c> can use it in place of the synchronous <see cref="Runner"/>
/// (<c>new VmLauncher(() =&gt; new ActorRunner(options))</c>). <paramref name="template"/> gives the
/// run-loop settings (immediate-exit method, timer backend, dispatcher, tracing); the machine and
/// its vCPU count come from the caller.
/// </summary>
public sealed class ActorRunner(VmOptions? template = null) : IVmRunner
{
    /// <summary>The last run's full result (statistics included), for the host's summary.</summary>
    public VmResult? LastResult { get; private set; }

    public RunResult Run(Machine machine, RunLimits limits, CancellationToken cancellationToken = default)
    {
        var options = (template ?? new VmOptions()) with
        {
            Vcpus = machine.Cpus.Count,
            Timeout = limits.WallTime ?? (template?.Timeout ?? TimeSpan.FromDays(1)),
            StopWhenAllHalted = true,
        };
        var result = VmRunner.RunAsync(machine, options, cancellationToken).GetAwaiter().GetResult();
        LastResult = result;
        var outcome = result.Kind switch
        {
            VmExitKind.Shutdown when machine.DebugExit?.ExitStatus is not null => RunOutcome.DebugExit,
            VmExitKind.HaltedForever => RunOutcome.HaltedForever,
            VmExitKind.Shutdown => RunOutcome.DebugExit,
            VmExitKind.TripleFault => RunOutcome.TripleFault,
            VmExitKind.Timeout => RunOutcome.TimeLimit,
            VmExitKind.Cancelled => RunOutcome.Cancelled,
            _ => RunOutcome.UnhandledExit,
        };
        return new RunResult(outcome, machine.DebugExit?.ExitStatus, result.Statistics.Total.InstructionsRetired, result.Elapsed, result.Detail);
    }
}
