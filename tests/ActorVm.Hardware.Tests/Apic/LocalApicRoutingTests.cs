using ActorVm.Hardware.Apic;
using static ActorVm.Hardware.Tests.Apic.ApicTestKit;

namespace ActorVm.Hardware.Tests.Apic;

/// <summary>The APIC bus: physical, logical flat/cluster, x2APIC cluster, broadcast, shorthands and lowest priority (SDM 11.6.2, 11.12.10).</summary>
public class LocalApicRoutingTests
{
    private static LocalApic[] XApics(int n) => Enumerable.Range(0, n).Select(i => Enabled(i)).ToArray();

    private static LocalApic[] X2Apics(int n) => Enumerable.Range(0, n).Select(i => EnabledX2(i)).ToArray();

    private static InterruptMessage Msg(uint dest, bool logical = false, Shorthand sh = Shorthand.None, int source = 0, bool x2 = false, DeliveryMode mode = DeliveryMode.Fixed) =>
        new(0x40, mode, logical, false, true, sh, dest, source, x2);

    private static int[] Ids(IEnumerable<LocalApic> apics) => apics.Select(a => a.VcpuId).ToArray();

    [Fact]
    public void PhysicalXApic()
    {
        var apics = XApics(4);
        Assert.Equal([2], Ids(LocalApic.Route(apics, Msg(2))));
        Assert.Empty(LocalApic.Route(apics, Msg(9)));
        Assert.Equal([0, 1, 2, 3], Ids(LocalApic.Route(apics, Msg(0xFF))));

        apics[3].WriteMmio(ApicReg.Id, 0x2A00_0000, 0); // software-assigned xAPIC ID
        Assert.Equal([3], Ids(LocalApic.Route(apics, Msg(0x2A))));
        Assert.Empty(LocalApic.Route(apics, Msg(3)));
    }

    [Fact]
    public void PhysicalX2ApicUses32BitIds()
    {
        var apics = new[] { EnabledX2(0), EnabledX2(1), EnabledX2(300) };
        Assert.Equal([300], Ids(LocalApic.Route(apics, Msg(300, x2: true))));
        Assert.Empty(LocalApic.Route(apics, Msg(300 & 0xFF, x2: true)));
        Assert.Equal([0, 1, 300], Ids(LocalApic.Route(apics, Msg(0xFFFF_FFFF, x2: true))));
        Assert.Empty(LocalApic.Route(apics, Msg(0xFF, x2: true))); // 0xFF is an ordinary x2APIC ID
        Assert.Equal([0, 1, 300], Ids(LocalApic.Route(apics, Msg(0xFF, x2: false)))); // an 8-bit broadcast (IOAPIC) reaches all
    }

    [Fact]
    public void LogicalFlat()
    {
        var apics = XApics(4);
        for (var i = 0; i < 4; i++)
        {
            apics[i].WriteMmio(ApicReg.Ldr, (1u << i) << 24, 0);
        }

        Assert.Equal([1, 3], Ids(LocalApic.Route(apics, Msg(0b1010, logical: true))));
        Assert.Empty(LocalApic.Route(apics, Msg(0x10, logical: true)));
        Assert.Equal([0, 1, 2, 3], Ids(LocalApic.Route(apics, Msg(0xFF, logical: true))));
        Assert.True(apics[2].MatchesLogical(0x04));
        Assert.False(apics[2].MatchesPhysical(0x04));
    }

    [Fact]
    public void LogicalCluster()
    {
        var apics = XApics(4);
        uint[] ldrs = [0x11, 0x12, 0x21, 0x24]; // cluster 1: bits 1, 2; cluster 2: bits 1, 4
        for (var i = 0; i < 4; i++)
        {
            apics[i].WriteMmio(ApicReg.Dfr, 0x0FFF_FFFF, 0);
            apics[i].WriteMmio(ApicReg.Ldr, ldrs[i] << 24, 0);
        }

        Assert.Equal([0, 1], Ids(LocalApic.Route(apics, Msg(0x13, logical: true))));
        Assert.Equal([3], Ids(LocalApic.Route(apics, Msg(0x24, logical: true))));
        Assert.Equal([2], Ids(LocalApic.Route(apics, Msg(0x21, logical: true))));
        Assert.Empty(LocalApic.Route(apics, Msg(0x31, logical: true)));
        Assert.Equal([0, 1, 2, 3], Ids(LocalApic.Route(apics, Msg(0xFF, logical: true))));
    }

    [Fact]
    public void LogicalX2ApicClusterFromDerivedLdr()
    {
        var apics = X2Apics(20); // cluster 0: ids 0-15, cluster 1: ids 16-19
        Assert.Equal([1, 3], Ids(LocalApic.Route(apics, Msg(0x0000_000A, logical: true, x2: true))));
        Assert.Equal([16, 19], Ids(LocalApic.Route(apics, Msg(0x0001_0009, logical: true, x2: true))));
        Assert.Empty(LocalApic.Route(apics, Msg(0x0002_0001, logical: true, x2: true)));
        Assert.Equal(20, LocalApic.Route(apics, Msg(0xFFFF_FFFF, logical: true, x2: true)).Count);
    }

    [Fact]
    public void Shorthands()
    {
        var apics = XApics(4);
        Assert.Equal([2], Ids(LocalApic.Route(apics, Msg(0, sh: Shorthand.Self, source: 2))));
        Assert.Equal([0, 1, 2, 3], Ids(LocalApic.Route(apics, Msg(0, sh: Shorthand.AllIncludingSelf, source: 2))));
        Assert.Equal([0, 1, 3], Ids(LocalApic.Route(apics, Msg(0, sh: Shorthand.AllExcludingSelf, source: 2))));
    }

    [Fact]
    public void HardwareDisabledApicsAreNotOnTheBus()
    {
        var apics = XApics(3);
        apics[1].TryWriteMsr(0x1B, 0xFEE0_0000, 0, out _);
        Assert.Equal([0, 2], Ids(LocalApic.Route(apics, Msg(0xFF))));
        Assert.Empty(LocalApic.Route(apics, Msg(1)));
    }

    [Fact]
    public void LowestPriorityPicksLowestAprThenLowestId()
    {
        var apics = XApics(4);
        var all = Msg(0xFF, mode: DeliveryMode.LowestPriority);
        Assert.Equal([0], Ids(LocalApic.Route(apics, all))); // all APR 0: lowest ID

        apics[0].SetTpr(0x20);
        apics[1].SetTpr(0x10);
        apics[2].SetTpr(0x10);
        apics[3].SetTpr(0x30);
        Assert.Equal([1], Ids(LocalApic.Route(apics, all)));

        Fixed(apics[1], 0x80); // an IRR class above TPR raises APR
        Assert.Equal([2], Ids(LocalApic.Route(apics, all)));

        apics[2].WriteMmio(ApicReg.Svr, 0xFF, 0); // software-disabled APICs do not arbitrate
        Assert.Equal([0], Ids(LocalApic.Route(apics, all)));
    }

    [Fact]
    public void SelfIpiThroughIcrReachesOnlyTheSenderOnce()
    {
        var apics = XApics(3);
        var fx = apics[1].WriteMmio(ApicReg.IcrLow, 0x0004_00F1, 0); // self shorthand, fixed 0xF1
        var msg = Assert.NotNull(fx.Ipi);
        var targets = LocalApic.Route(apics, msg);
        Assert.Equal([1], Ids(targets));
        foreach (var t in targets)
        {
            Assert.True(t.AcceptInterrupt(msg));
        }

        Assert.Equal(0xF1, apics[1].Acknowledge());
        Assert.Equal(-1, apics[1].HighestIrr());
        Assert.All([apics[0], apics[2]], a => Assert.Equal(-1, a.HighestIrr()));
    }

    [Fact]
    public void SelfIpiMsrReachesOnlyTheSender()
    {
        var apics = X2Apics(3);
        var msg = Assert.NotNull(WriteX2(apics[2], ApicReg.SelfIpi, 0xF1).Ipi);
        Assert.Equal([2], Ids(LocalApic.Route(apics, msg)));
    }

    [Fact]
    public void StartupSequenceThroughTheBus()
    {
        var apics = XApics(3);
        var init = Assert.NotNull(apics[0].WriteMmio(ApicReg.IcrLow, 0x000C_4500, 0).Ipi); // INIT, assert, all-but-self
        var sipi = Assert.NotNull(apics[0].WriteMmio(ApicReg.IcrLow, 0x000C_4608, 0).Ipi); // SIPI vector 8, all-but-self
        foreach (var m in new[] { init, sipi })
        {
            foreach (var t in LocalApic.Route(apics, m))
            {
                Assert.True(t.AcceptInterrupt(m));
            }
        }

        Assert.False(apics[0].HasPendingInitOrSipi);
        foreach (var ap in apics.Skip(1))
        {
            Assert.True(ap.TakePendingInit());
            ap.InitReset();
            Assert.True(ap.TryTakeSipi(out var v));
            Assert.Equal(8, v);
        }
    }
}
