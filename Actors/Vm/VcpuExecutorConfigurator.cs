using Akka.Configuration;
using Akka.Dispatch;

namespace ActorVm.Actors.Vm;

/// <summary>
/// Makes a <see cref="VcpuExecutor"/> for a dispatcher configured with
/// <c>executor = "ActorVm.Actors.Vm.VcpuExecutorConfigurator, ActorVm.Actors"</c>;
/// <c>vcpu-executor.thread-count</c> sets its threads (default: one per host core) and
/// <c>vcpu-executor.idle-poll-microseconds</c> its idle poll.
/// </summary>
public sealed class VcpuExecutorConfigurator : ExecutorServiceConfigurator
{
    /// <summary>The idle worker's busy poll before it sleeps (see <see cref="VcpuExecutor"/>).</summary>
    public const int DefaultIdlePollMicroseconds = 0;

    private readonly int _threads;
    private readonly TimeSpan _idlePoll;

    public VcpuExecutorConfigurator(Config config, IDispatcherPrerequisites prerequisites) : base(config, prerequisites)
    {
        _threads = config.GetInt("vcpu-executor.thread-count", Math.Max(1, Environment.ProcessorCount));
        if (_threads < 1)
        {
            throw new ConfigurationException($"vcpu-executor.thread-count must be at least 1, was {_threads}");
        }

        var pollMicroseconds = config.GetInt("vcpu-executor.idle-poll-microseconds", DefaultIdlePollMicroseconds);
        if (pollMicroseconds < 0)
        {
            throw new ConfigurationException($"vcpu-executor.idle-poll-microseconds cannot be negative, was {pollMicroseconds}");
        }

        _idlePoll = TimeSpan.FromMicroseconds(pollMicroseconds);
    }

    public override ExecutorService Produce(string id) => new VcpuExecutor(id, _threads, _idlePoll);
}
