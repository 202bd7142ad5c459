using System.Globalization;
using ActorVm.Actors.Vm;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Logging;

/// <summary>
/// KVM's x86 tracepoints (arch/x86/kvm/trace.h, Linux 6.9-6.13 formats; spec §9), one method per
/// event. Each event has its own switch; callers test the switch first
/// (<c>if (trace.Entry) trace.KvmEntry(...)</c>) so a disabled event costs one field read and
/// allocates nothing. Lines are <c>&lt;seconds.microseconds&gt; &lt;event&gt;: &lt;payload&gt;</c>,
/// the time taken from the VM's TSC clock, written as one Serilog event each.
/// </summary>
public sealed class Tracepoints
{
    private static readonly string[] DeliveryModes = ["Fixed", "LowPrio", "SMI", "Res3", "NMI", "INIT", "SIPI", "ExtINT"];
    private static readonly string[] Shorthands = ["dst", "self", "all", "all-but-self"];

    private readonly Serilog.ILogger _log;
    private readonly ITscClock _clock;

    public Tracepoints(TraceEvents enabled, Serilog.ILogger? log, ITscClock clock)
    {
        _log = log ?? Serilog.Log.Logger;
        _clock = clock;
        Entry = (enabled & TraceEvents.KvmEntry) != 0;
        Exit = (enabled & TraceEvents.KvmExit) != 0;
        InjVirq = (enabled & TraceEvents.KvmInjVirq) != 0;
        ApicIpi = (enabled & TraceEvents.KvmApicIpi) != 0;
        AcceptIrq = (enabled & TraceEvents.KvmApicAcceptIrq) != 0;
        Eoi = (enabled & TraceEvents.KvmEoi) != 0;
        HvTimerState = (enabled & TraceEvents.KvmHvTimerState) != 0;
    }

    public static Tracepoints Off { get; } = new(TraceEvents.None, Serilog.Core.Logger.None, new ManualTscClock());

    public bool Entry { get; }
    public bool Exit { get; }
    public bool InjVirq { get; }
    public bool ApicIpi { get; }
    public bool AcceptIrq { get; }
    public bool Eoi { get; }
    public bool HvTimerState { get; }

    /// <summary>kvm_entry: <c>vcpu %u, rip 0x%lx%s</c>, suffix <c>[immediate exit]</c> iff FORCE (I9).</summary>
    public void KvmEntry(int vcpu, ulong rip, bool immediateExit) =>
        Write("kvm_entry", string.Create(CultureInfo.InvariantCulture, $"vcpu {vcpu}, rip 0x{rip:x}{(immediateExit ? "[immediate exit]" : "")}"));

    /// <summary>kvm_exit: <c>vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x</c> (no failed-entry/SMM flags here).</summary>
    public void KvmExit(int vcpu, in VmExit exit, ulong rip) =>
        Write("kvm_exit", string.Create(CultureInfo.InvariantCulture,
            $"vcpu {vcpu} reason {exit.Reason.TraceName()} rip 0x{rip:x} info1 0x{exit.Qualification:x16} info2 0x{0:x16} intr_info 0x{exit.IntrInfo:x8} error_code 0x{exit.ErrorCode:x8}"));

    /// <summary>kvm_inj_virq: <c>%s 0x%x%s</c>.</summary>
    public void KvmInjVirq(byte vector, bool soft, bool reinjected) =>
        Write("kvm_inj_virq", string.Create(CultureInfo.InvariantCulture, $"{(soft ? "Soft/INTn" : "IRQ")} 0x{vector:x}{(reinjected ? " [reinjected]" : "")}"));

    /// <summary>kvm_apic_ipi: <c>dst %x vec %u (%s|%s|%s|%s|%s)</c>.</summary>
    public void KvmApicIpi(uint icrLow, uint destination) =>
        Write("kvm_apic_ipi", string.Create(CultureInfo.InvariantCulture,
            $"dst {destination:x} vec {icrLow & 0xFF} ({DeliveryModes[(icrLow >> 8) & 7]}|{((icrLow & (1 << 11)) != 0 ? "logical" : "physical")}|{((icrLow & (1 << 14)) != 0 ? "assert" : "de-assert")}|{((icrLow & (1 << 15)) != 0 ? "level" : "edge")}|{Shorthands[(icrLow >> 18) & 3]})"));

    /// <summary>kvm_apic_accept_irq: <c>apicid %x vec %u (%s|%s)</c>.</summary>
    public void KvmApicAcceptIrq(uint apicId, DeliveryMode mode, bool level, byte vector) =>
        Write("kvm_apic_accept_irq", string.Create(CultureInfo.InvariantCulture,
            $"apicid {apicId:x} vec {vector} ({DeliveryModes[(int)mode & 7]}|{(level ? "level" : "edge")})"));

    /// <summary>kvm_eoi: <c>apicid %x vector %d</c>.</summary>
    public void KvmEoi(uint apicId, int vector) =>
        Write("kvm_eoi", string.Create(CultureInfo.InvariantCulture, $"apicid {apicId:x} vector {vector}"));

    /// <summary>kvm_hv_timer_state: <c>vcpu_id %x hv_timer %x</c>.</summary>
    public void KvmHvTimerState(int vcpu, bool hvTimerInUse) =>
        Write("kvm_hv_timer_state", string.Create(CultureInfo.InvariantCulture, $"vcpu_id {vcpu:x} hv_timer {(hvTimerInUse ? 1 : 0)}"));

    private void Write(string name, string payload)
    {
        var tsc = _clock.ReadTsc();
        var hz = Math.Max(1UL, _clock.Frequency);
        var seconds = tsc / hz;
        var micros = (tsc % hz) * 1_000_000 / hz;
        _log.Information("{TraceLine:l}", string.Create(CultureInfo.InvariantCulture, $"{seconds}.{micros:D6} {name}: {payload}"));
    }
}
