using ActorVm.Actors.Stats;
using Akka.Actor;

namespace ActorVm.Actors.Vm;

/// <summary>A running VM seen from outside the actor system: ask for statistics, or stop it.</summary>
public sealed class VmHandle(IActorRef vm)
{
    public Task<VmStatistics> StatisticsAsync(TimeSpan timeout) => vm.Ask<VmStatistics>(VmProtocol.GetStatistics.Instance, timeout);

    public void Stop(VmExitKind kind, int exitCode, string detail) => vm.Tell(new VmProtocol.StopVm(kind, exitCode, detail));
}
