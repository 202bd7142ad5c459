using ActorVm.Hardware.Apic;
using static ActorVm.Hardware.Tests.Apic.ApicTestKit;

namespace ActorVm.Hardware.Tests.Apic;

/// <summary>
/// Spec invariant I11 (no vector in service twice; EOI clears the highest ISR bit; the acknowledged
/// vector is the highest IRR vector whose class beats PPR) checked against a small reference model
/// over seeded random sequences of accept / acknowledge / EOI / TPR writes.
/// </summary>
public class LocalApicInvariantTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RandomSequencesMatchTheReferenceModel(int seed)
    {
        var rng = new Random(seed);
        var apic = Enabled();
        var irr = new SortedSet<int>();
        var isr = new SortedSet<int>();
        var tpr = 0;

        for (var step = 0; step < 5_000; step++)
        {
            switch (rng.Next(4))
            {
                case 0:
                    var v = rng.Next(16, 256);
                    Assert.True(Fixed(apic, (byte)v));
                    irr.Add(v);
                    break;
                case 1:
                    var isrv = isr.Count > 0 ? isr.Max : 0;
                    var ppr = (tpr & 0xF0) >= (isrv & 0xF0) ? tpr : isrv & 0xF0;
                    var expected = irr.Count > 0 && (irr.Max & 0xF0) > (ppr & 0xF0) ? irr.Max : -1;
                    Assert.Equal(ppr, apic.Ppr);
                    Assert.Equal(expected, apic.HighestPendingDeliverable());
                    Assert.Equal(expected >= 0, apic.TryAcknowledge(out var got));
                    if (expected >= 0)
                    {
                        Assert.Equal(expected, got);
                        Assert.DoesNotContain(expected, isr); // never in service twice
                        irr.Remove(expected);
                        isr.Add(expected);
                    }

                    break;
                case 2:
                    apic.Eoi();
                    if (isr.Count > 0)
                    {
                        isr.Remove(isr.Max);
                    }

                    break;
                default:
                    tpr = rng.Next(256);
                    apic.SetTpr((byte)tpr);
                    break;
            }

            Assert.Equal(irr.Count > 0 ? irr.Max : -1, apic.HighestIrr());
            Assert.Equal(isr.Count > 0 ? isr.Max : -1, apic.HighestIsr());
        }
    }
}
