using ActorVm.Actors.Vm;

namespace ActorVm.Actors.Stress;

/// <summary>The storms of issue 6; each guest counts what it sent and received (see <see cref="StormGuest"/>).</summary>
public enum StormKind
{
    /// <summary>Every vCPU sends fixed IPIs (vector 0x40) to every other, round robin, one outstanding per target.</summary>
    AllToAll,

    /// <summary>Self-IPIs through SELF_IPI (0x83F, vector 0x41) and the ICR self shorthand (0x42); forced immediate exits by the preemption timer.</summary>
    SelfIpi,

    /// <summary>The same with forced immediate exits by a self-IPI to the host thread (exit 1, slowpath).</summary>
    SelfIpiKick,

    /// <summary>TSC-deadline timers (vector 0x50) re-armed from the handler on every vCPU.</summary>
    Timers,

    /// <summary>Pairs ping-pong an IPI (vector 0x44) and halt (STI; HLT) until the answer arrives.</summary>
    PingPong,

    /// <summary>All-to-all IPIs plus TSC-deadline timers while every vCPU toggles IF and TPR.</summary>
    Mixed,

    /// <summary>The BSP cycles INIT, SIPI through the APs and waits for each to boot again.</summary>
    InitSipi,

    /// <summary>
    /// The BSP races INIT and SIPI at the APs, which halt with IF=0: a fixed IRQ that must not
    /// wake them, a SIPI to a halted and one to a running AP (both dropped), an NMI (wakes), then
    /// INIT, SIPI(9), INIT, SIPI(8) back to back (the second INIT overrides a pending SIPI 9).
    /// </summary>
    SipiRace,

    /// <summary>Periodic LAPIC timers asking for a 1 ns period (vector 0x51): never more ticks than the 200 µs minimum period allows.</summary>
    Periodic,
}

public static class StormCatalog
{
    public static readonly IReadOnlyList<(StormKind Kind, string Name)> All =
    [
        (StormKind.AllToAll, "all-to-all"), (StormKind.SelfIpi, "self-ipi"), (StormKind.SelfIpiKick, "self-ipi-kick"),
        (StormKind.Timers, "timers"), (StormKind.PingPong, "ping-pong"), (StormKind.Mixed, "mixed"),
        (StormKind.InitSipi, "init-sipi"), (StormKind.SipiRace, "sipi-race"), (StormKind.Periodic, "periodic"),
    ];

    public static string Name(StormKind kind) => All.First(s => s.Kind == kind).Name;

    public static StormKind? Find(string name) =>
        All.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)) is { Name: not null } hit ? hit.Kind : null;

    /// <summary>The immediate-exit method the storm runs with (the self-IPI storm exists once for each).</summary>
    public static ImmediateExitMethod Method(StormKind kind) =>
        kind == StormKind.SelfIpiKick ? ImmediateExitMethod.SelfIpi : ImmediateExitMethod.PreemptionTimer;

    public static int MinimumVcpus(StormKind kind) => kind is StormKind.SelfIpi or StormKind.SelfIpiKick or StormKind.Timers or StormKind.Periodic ? 1 : 2;
}
