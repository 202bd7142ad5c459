using ActorVm.Actors.Vm;

namespace ActorVm.Host;

/// <summary>The <c>--trace-events</c> list: KVM tracepoint names (kvm_entry, kvm_exit, …), comma-separated, or "all".</summary>
public static class TraceEventNames
{
    public static readonly IReadOnlyDictionary<string, TraceEvents> Names = new Dictionary<string, TraceEvents>
    {
        ["kvm_entry"] = TraceEvents.KvmEntry,
        ["kvm_exit"] = TraceEvents.KvmExit,
        ["kvm_inj_virq"] = TraceEvents.KvmInjVirq,
        ["kvm_apic_ipi"] = TraceEvents.KvmApicIpi,
        ["kvm_apic_accept_irq"] = TraceEvents.KvmApicAcceptIrq,
        ["kvm_eoi"] = TraceEvents.KvmEoi,
        ["kvm_hv_timer_state"] = TraceEvents.KvmHvTimerState,
        ["all"] = TraceEvents.All,
    };

    public static TraceEvents Parse(string? list, List<string> errors)
    {
        var result = TraceEvents.None;
        foreach (var name in (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (Names.TryGetValue(name.ToLowerInvariant(), out var e))
            {
                result |= e;
            }
            else
            {
                var best = Names.Keys.OrderBy(k => Scenarios.ScenarioLoader.Levenshtein(k, name)).First();
                errors.Add($"--trace-events: unknown event '{name}'; did you mean '{best}'? (events: {string.Join(", ", Names.Keys)})");
            }
        }

        return result;
    }
}
