using ActorVm.Actors.Stats;

namespace ActorVm.Actors.Vm;

public enum VmExitKind
{
    /// <summary>The guest asked to stop (debug-exit device, a loader's shutdown, the host).</summary>
    Shutdown,
    TripleFault,
    /// <summary>Every vCPU blocked with nothing that could wake it (<see cref="VmOptions.StopWhenAllHalted"/>).</summary>
    HaltedForever,
    /// <summary>A vCPU or actor failed (unexpected exit, exception): <see cref="VmResult.Detail"/> says why.</summary>
    Error,
    Timeout,
    Cancelled,
}

/// <summary>The outcome of <see cref="VmRunner.RunAsync"/>.</summary>
public sealed record VmResult(VmExitKind Kind, int ExitCode, string Detail, VmStatistics Statistics, TimeSpan Elapsed, double HostTimerMaxLatenessMicroseconds);
