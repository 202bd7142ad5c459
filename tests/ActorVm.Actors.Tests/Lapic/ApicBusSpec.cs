using ActorVm.Actors.Lapic;
using ActorVm.Hardware.Apic;

namespace ActorVm.Actors.Tests.Lapic;

/// <summary>Which x2APIC ICR writes the vCPU may send itself: those that cannot touch the sender's own LAPIC.</summary>
public sealed class ApicBusSpec
{
    [Theory(DisplayName = "MayReachSource: self, broadcast, own logical cluster bit, all-including-self and illegal vectors reach the sender; others do not")]
    // source, ICR, expected
    [InlineData(0, 0x0000_0000_0000_4041UL, true)]   // physical = own x2APIC ID
    [InlineData(0, 0x0000_0001_0000_4041UL, false)]  // physical, another APIC
    [InlineData(5, 0x0000_0005_0000_4041UL, true)]
    [InlineData(5, 0x0000_00FF_0000_4041UL, false)]  // 0xFF is not the x2APIC broadcast
    [InlineData(0, 0xFFFF_FFFF_0000_4041UL, true)]   // x2APIC broadcast
    [InlineData(0, 0x0000_0000_0004_4041UL, true)]   // shorthand self
    [InlineData(0, 0x0000_0000_0008_4041UL, true)]   // all including self
    [InlineData(0, 0x0000_0000_000C_4041UL, false)]  // all excluding self
    [InlineData(0, 0x0000_0001_0000_4841UL, true)]   // logical cluster 0, bit 0
    [InlineData(0, 0x0000_0006_0000_4841UL, false)]  // logical cluster 0, bits 1-2
    [InlineData(17, 0x0001_0002_0000_4841UL, true)]  // APIC 17 = cluster 1, bit 1
    [InlineData(17, 0x0000_0002_0000_4841UL, false)] // cluster 0, bit 1 is APIC 1
    [InlineData(0, 0x0000_0003_0000_4941UL, true)]   // lowest priority among APICs 0-1 (logical): the sender may win
    [InlineData(0, 0x0000_0002_0000_400FUL, true)]   // fixed vector 15: the sender's ESR logs "send illegal vector"
    [InlineData(0, 0x0000_0002_0000_4400UL, false)]  // NMI to APIC 2: vector ignored
    public void MayReachSource(int source, ulong icr, bool expected)
    {
        var m = LocalApic.DecodeIcr((uint)icr, (uint)(icr >> 32), x2ApicFormat: true, source);
        Assert.Equal(expected, ApicBus.MayReachSource(m, source));
    }
}
