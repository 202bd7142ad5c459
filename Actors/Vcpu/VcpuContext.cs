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
        _retiredAtStart = RetiredByAllVcpus();
    }

    private readonly long _retiredAtStart;

    public int Id => Cpu.Id;

    public Machine Machine { get; }

    public Cpu Cpu { get; }

    public VcpuShared Shared { get; }

    public VmOptions Options { get; }

    public Tracepoints Trace { get; }

    public VcpuCounters Counters { get; } = new();

    /// <summary>
    /// This vCPU's LAPIC, set by its LapicActor. Only that actor changes it; the APIC bus reads it
    /// for lowest-priority arbitration without a lock, as KVM's delivery path reads the RCU apic
    /// map and the candidates' priorities (a stale read only picks another valid target).
    /// </summary>
    public Hardware.Apic.LocalApic? Apic { get; internal set; }

    /// <summary>
    /// The VM's APIC bus, set by the VmActor: IPIs go straight to the target LAPIC actors. Null
    /// for a vCPU's actors tested alone: then the LAPIC sends <c>VmProtocol.SendIpi</c> to its
    /// bus actor and the ICR fastpath always waits for its LAPIC, as before the bus existed.
    /// </summary>
    public Lapic.ApicBus? Bus { get; internal set; }

    /// <summary>
    /// Guest instructions the VM may still retire under <see cref="VmOptions.MaxInstructions"/>
    /// (all vCPUs together), or long.MaxValue without a limit. Reads the other vCPUs' counters
    /// without synchronisation: with several vCPUs the VM may overshoot by up to one slice each.
    /// </summary>
    public long RemainingInstructions =>
        Options.MaxInstructions is { } max ? Math.Max(0, max - (RetiredByAllVcpus() - _retiredAtStart)) : long.MaxValue;

    private long RetiredByAllVcpus()
    {
        long sum = 0;
        foreach (var cpu in Machine.Cpus)
        {
            sum += cpu.InstructionsRetired;
        }

        return sum;
    }
}
