using ActorVm.Hardware;

namespace ActorVm.Actors.Vm;

/// <summary>How a forced immediate exit is produced (spec §7 step 4).</summary>
public enum ImmediateExitMethod
{
    /// <summary>VMX with enable_preemption_timer: timer value 0, exit 52 before any instruction, fastpath EXIT_HANDLED.</summary>
    PreemptionTimer,

    /// <summary>smp_send_reschedule(self) right before entry, as SVM (and VMX without the timer) does: exit 1, slowpath.</summary>
    SelfIpi,
}

/// <summary>Where the LAPIC timer runs while the vCPU is in the guest (spec §8.5).</summary>
public enum TimerBackend
{
    /// <summary>Offloaded to the preemption timer: the deadline is checked inside the slice and expires through the fastpath.</summary>
    Hv,

    /// <summary>A host timer thread (the hrtimer) sends TimerExpired to the LAPIC actor.</summary>
    Sw,
}

public enum VcpuDispatcher
{
    /// <summary>A Dispatcher on <see cref="VcpuExecutor"/>: one thread per host core, throughput 1.</summary>
    Shared,

    /// <summary>PinnedDispatcher: one thread per vCPU actor.</summary>
    Pinned,
}

/// <summary>Trace events (spec §9); each is enabled separately and costs one field test when off.</summary>
[Flags]
public enum TraceEvents
{
    None = 0,
    KvmEntry = 1,
    KvmExit = 2,
    KvmInjVirq = 4,
    KvmApicIpi = 8,
    KvmApicAcceptIrq = 16,
    KvmEoi = 32,
    KvmHvTimerState = 64,
    All = 127,
}

/// <summary>Everything <see cref="VmRunner.RunAsync"/> needs to build and run a VM.</summary>
public sealed record VmOptions
{
    public int Vcpus { get; init; } = 1;

    public ulong MemoryMiB { get; init; } = 64;

    public ulong TscHz { get; init; } = 2_000_000_000;

    /// <summary>Loads the guest into the machine and prepares the BSP (the platform's Multiboot loader, or a test program). APs wait for INIT/SIPI.</summary>
    public Action<Machine, IVmControl>? Load { get; init; }

    public ImmediateExitMethod ImmediateExit { get; init; } = ImmediateExitMethod.PreemptionTimer;

    /// <summary>Forced to <see cref="TimerBackend.Sw"/> with <see cref="ImmediateExitMethod.SelfIpi"/> (no preemption timer means no hv timer).</summary>
    public TimerBackend Timer { get; init; } = TimerBackend.Hv;

    public VcpuDispatcher Dispatcher { get; init; } = VcpuDispatcher.Shared;

    public TraceEvents Trace { get; init; } = TraceEvents.None;

    /// <summary>Receives trace lines (<c>&lt;sec.usec&gt; &lt;event&gt;: &lt;payload&gt;</c>); defaults to Serilog's static logger.</summary>
    public Serilog.ILogger? TraceLogger { get; init; }

    /// <summary>Guest instructions per slice before the vCPU actor yields its thread (an exit 1, like a host tick).</summary>
    public long SliceInstructions { get; init; } = 20_000;

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// End the VM (kind <see cref="VmExitKind.InstructionLimit"/>) once the vCPUs together retired
    /// this many guest instructions; null = no limit. Slices are shortened to the remaining budget.
    /// </summary>
    public long? MaxInstructions { get; init; }

    /// <summary>A clock for virtual time in tests; default host monotonic time at <see cref="TscHz"/>.</summary>
    public Hardware.X86.ITscClock? Clock { get; init; }

    /// <summary>
    /// End the VM (kind HaltedForever) once every vCPU is blocked, no LAPIC timer is armed and
    /// nothing changed for two polls (~100 ms): the synchronous runner's "halted forever". Off by
    /// default: KVM itself never stops a halted VM.
    /// </summary>
    public bool StopWhenAllHalted { get; init; }

    /// <summary>Invariant-checker hooks (stress runs); null = off.</summary>
    public Vcpu.IRunLoopObserver? Observer { get; init; }

    /// <summary>IPI and timer-delivery hooks (the host's trace-event JSON); null = off.</summary>
    public Lapic.IApicEventListener? ApicEvents { get; init; }

    /// <summary>Called once the VM actor exists, with a handle to watch (statistics) and stop the VM: the host's progress display and instruction limit.</summary>
    public Action<VmHandle>? Started { get; init; }

    /// <summary>Delay and protocol-breaking switches for stress runs; null = off.</summary>
    public Vcpu.FaultInjection? Faults { get; init; }

    internal TimerBackend EffectiveTimer => ImmediateExit == ImmediateExitMethod.SelfIpi ? TimerBackend.Sw : Timer;
}

/// <summary>What devices and loaders may do to the running VM (e.g. the debug-exit device ends it).</summary>
public interface IVmControl
{
    void Shutdown(int exitCode, string reason);
}

public static class VmControlExtensions
{
    /// <summary>Ends the VM (kind Shutdown, the device's exit status) when the guest writes the debug-exit port.</summary>
    public static void ShutdownOn(this IVmControl control, Hardware.Devices.DebugExit device) =>
        device.Requested += status => control.Shutdown(status, $"debug-exit status {status}");
}
