using Akka.Configuration;
using Akka.Dispatch;

namespace ActorVm.Actors.Vm;

/// <summary>
/// Makes a <see cref="VcpuExecutor"/> for a dispatcher configured with
/// <c>executor = "ActorVm.Actors.Vm.VcpuExecutorConfigurator, ActorVm.Actors"</c>;
/// <c>vcpu-executor.thread-count</c> sets its threads (default: one per host core).
/// </summary>
public sealed class VcpuExecutorConfigurator : ExecutorServiceConfigurator
{
    private readonly int _threads;

    public VcpuExecutorConfigurator(Config config, IDispatcherPrerequisites prerequisites) : base(config, prerequisites)
    {
        _threads = config.GetInt("vcpu-executor.thread-count", Math.Max(1, Environment.ProcessorCount));
        if (_threads < 1)
        {
            throw new ConfigurationException($"vcpu-executor.thread-count must be at least 1, was {_threads}");
        }
    }

    public override ExecutorService Produce(string id) => new VcpuExecutor(id, _threads);
}
