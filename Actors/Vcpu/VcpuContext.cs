using ActorVm.Actors.Logging;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Vcpu;

/// <summary>
/// What one vCPU's three actors share: the Cpu (touched by one actor at a time, handed over by
/// messages), the shared request/mode word, counters and trace switches.
/// </summary>
public sealed class VcpuContext
{
    public VcpuContext(Machine machine, int id, VmOptions options, Tracepoints trace)
    {
        Machine = machine;
        Cpu = machine.Cpus[id];
        Shared = new VcpuShared(id, Cpu.ModeWord);
        Options = options;
        Trace = trace;
    }

    public int Id => Cpu.Id;

    public Machine Machine { get; }

    public Cpu Cpu { get; }

    public VcpuShared Shared { get; }

    public VmOptions Options { get; }

    public Tracepoints Trace { get; }

    public VcpuCounters Counters { get; } = new();
}
