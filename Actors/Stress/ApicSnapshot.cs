using ActorVm.Hardware.Apic;

namespace ActorVm.Actors.Stress;

/// <summary>
/// IRR, ISR and TPR of one LAPIC at one moment, taken by the LAPIC actor (the only thread that
/// owns that state) for the invariant checker, and only when a checker is installed. The checker
/// derives PPR and the deliverable vector from these bits itself (SDM 11.8.3.1), so an I11 check
/// does not just repeat <see cref="LocalApic.HighestPendingDeliverable"/>.
/// </summary>
public sealed record ApicSnapshot(ulong[] Irr, ulong[] Isr, byte Tpr)
{
    public static ApicSnapshot Of(LocalApic apic)
    {
        var irr = new ulong[4];
        var isr = new ulong[4];
        for (var v = 0; v < 256; v++)
        {
            if (apic.IsIrrSet(v))
            {
                irr[v >> 6] |= 1UL << (v & 63);
            }

            if (apic.IsIsrSet(v))
            {
                isr[v >> 6] |= 1UL << (v & 63);
            }
        }

        return new ApicSnapshot(irr, isr, apic.Tpr);
    }

    /// <summary>A snapshot from explicit vectors (tests: hand-made LAPIC states).</summary>
    public static ApicSnapshot From(IEnumerable<int> irr, IEnumerable<int> isr, byte tpr)
    {
        var i = new ulong[4];
        var s = new ulong[4];
        foreach (var v in irr)
        {
            i[v >> 6] |= 1UL << (v & 63);
        }

        foreach (var v in isr)
        {
            s[v >> 6] |= 1UL << (v & 63);
        }

        return new ApicSnapshot(i, s, tpr);
    }

    public int HighestIrr => Highest(Irr);

    public int HighestIsr => Highest(Isr);

    public bool InService(int vector) => (Isr[vector >> 6] & (1UL << (vector & 63))) != 0;

    /// <summary>PPR = TPR if TPR[7:4] ≥ ISRV[7:4], else ISRV[7:4]:0 (SDM 11.8.3.1).</summary>
    public int Ppr
    {
        get
        {
            var isrv = Math.Max(HighestIsr, 0);
            return (Tpr & 0xF0) >= (isrv & 0xF0) ? Tpr : isrv & 0xF0;
        }
    }

    /// <summary>The vector an INTA must take: the highest IRR vector whose class beats PPR's (SDM 11.8.3.1, 11.8.4), or -1.</summary>
    public int Deliverable
    {
        get
        {
            var v = HighestIrr;
            return v >= 0 && (v & 0xF0) > (Ppr & 0xF0) ? v : -1;
        }
    }

    public override string ToString() =>
        $"IRR {Hex(Irr)} ISR {Hex(Isr)} TPR 0x{Tpr:x2} PPR 0x{Ppr:x2}";

    private static string Hex(ulong[] bits) => $"{bits[3]:x16}{bits[2]:x16}{bits[1]:x16}{bits[0]:x16}".TrimStart('0') is { Length: > 0 } s ? s : "0";

    private static int Highest(ulong[] bits)
    {
        for (var w = 3; w >= 0; w--)
        {
            if (bits[w] != 0)
            {
                return (w * 64) + 63 - System.Numerics.BitOperations.LeadingZeroCount(bits[w]);
            }
        }

        return -1;
    }
}
