namespace ActorVm.Actors.Stress;

/// <summary>
/// How often the checker's event-driven rules had something to check in a run: a storm whose
/// rule never fired proves nothing about it, so the CI storms assert these are nonzero where the
/// storm exists for them.
/// </summary>
/// <param name="TraceLines">kvm_entry lines matched with entries (I9).</param>
/// <param name="Acknowledges">INTA snapshots checked (I11).</param>
/// <param name="Eois">EOI snapshots checked (I11).</param>
/// <param name="SelfIpis">Self-IPIs followed from send to acceptance (I13).</param>
/// <param name="Inits">INITs posted and accepted (I14).</param>
/// <param name="SipisDropped">SIPIs taken outside INIT_RECEIVED and checked to be dropped (I14).</param>
/// <param name="SipiStarts">SIPIs that started an AP (I14).</param>
/// <param name="SipisOverridden">INITs posted over a pending SIPI, which they must replace (I14; the LAPIC's view just before the post).</param>
/// <param name="HaltsWithInterruptsOff">HLTs retired with IF=0 (blocking, or ended by the HLT fastpath) whose next entry was checked (I12).</param>
/// <param name="HeldOffIrqs">Unforced entries with a deliverable IRQ that IF=0, a shadow or another injection kept out, checked for a window request (I11).</param>
public sealed record CheckerCoverage(
    long TraceLines,
    long Acknowledges,
    long Eois,
    long SelfIpis,
    long Inits,
    long SipisDropped,
    long SipiStarts,
    long SipisOverridden,
    long HaltsWithInterruptsOff,
    long HeldOffIrqs)
{
    public override string ToString() =>
        $"trace {TraceLines}, INTA {Acknowledges}, EOI {Eois}, self-IPIs {SelfIpis}, INIT {Inits}, SIPI dropped {SipisDropped}, SIPI starts {SipiStarts}, SIPI overridden {SipisOverridden}, HLT IF=0 {HaltsWithInterruptsOff}, IRQ held off {HeldOffIrqs}";
}
