using ActorVm.Actors.Stress;
using ActorVm.Hardware;
using static ActorVm.Actors.Stress.StormLayout;

namespace ActorVm.Actors.Tests.Stress;

/// <summary>The guest ledger on hand-written counts: a loss, a duplicate and a too-fast periodic timer are each reported.</summary>
public sealed class StormLedgerSpec : IDisposable
{
    private readonly Machine _m = new(new MachineConfig(2, 2));

    public void Dispose() => _m.Dispose();

    [Fact(DisplayName = "Ledger: an IPI sent but never received is lost, per pair and in total")]
    public void LostIpi()
    {
        _m.Memory.Write32(Record(0, Sent), 3);
        _m.Memory.Write32(SentTo(0, 1), 3);
        _m.Memory.Write32(Record(1, Received), 2);
        _m.Memory.Write32(ReceivedFrom(1, 0), 2);
        var ledger = StormLedger.Read(_m, StormKind.AllToAll, 2);
        Assert.Equal((3, 2, 1, 0), (ledger.Sent, ledger.Received, ledger.Lost, ledger.Duplicates));
        Assert.Contains(ledger.Errors, e => e.Contains("vCPU 0 sent 3 IPIs to vCPU 1, which received 2", StringComparison.Ordinal));
        Assert.Equal([1], ledger.Suspects);
    }

    [Fact(DisplayName = "Ledger: a self-IPI received twice is a duplicate; an IPI at a free slot too")]
    public void Duplicates()
    {
        _m.Memory.Write32(Record(1, Sent), 4);
        _m.Memory.Write32(Record(1, Received), 5);
        _m.Memory.Write32(Globals + StormLayout.Duplicates, 1);
        var ledger = StormLedger.Read(_m, StormKind.SelfIpi, 2);
        Assert.Equal(2, ledger.Duplicates);
        Assert.Equal(0, ledger.Lost);
    }

    [Theory(DisplayName = "Ledger: periodic ticks faster than 200 µs are reported; ticks at the minimum period are not")]
    [InlineData(11, 2_000_000UL, false)] // 10 periods of 200 µs at 2 GHz need 4,000,000 TSC ticks
    [InlineData(11, 4_000_000UL, true)]
    [InlineData(3, 100_000_000UL, true)] // coalesced ticks are fine
    public void PeriodicBound(uint ticks, ulong elapsedTsc, bool ok)
    {
        for (var v = 0; v < 2; v++)
        {
            _m.Memory.Write32(Record(v, Fired), ticks);
            _m.Memory.WriteBytes(TickTimes + ((ulong)v * 16), BitConverter.GetBytes(1000UL));
            _m.Memory.WriteBytes(TickTimes + ((ulong)v * 16) + 8, BitConverter.GetBytes(1000UL + elapsedTsc));
        }

        var ledger = StormLedger.Read(_m, StormKind.Periodic, 2);
        Assert.Equal(ok, ledger.Errors.Count == 0);
        if (!ok)
        {
            Assert.Contains("faster than the 200 µs minimum period", ledger.Errors[0], StringComparison.Ordinal);
        }
    }

    [Theory(DisplayName = "Ledger (sipi-race): a SIPI that restarted a running AP, a lost race boot, or a HLT with IF=0 left too often is reported")]
    [InlineData(1u, 5u, 5u, 3u, true)]
    [InlineData(2u, 5u, 5u, 3u, false)] // booted again via SIPI 7
    [InlineData(1u, 5u, 4u, 3u, false)] // one race without its page-8 boot
    [InlineData(1u, 5u, 5u, 9u, false)] // 9 wakes for 2 NMIs + 2 SIPIs
    public void SipiRace(uint bootsPage7, uint races, uint bootsPage8, uint wakes, bool ok)
    {
        _m.Memory.Write32(Record(1, Sent), races);
        _m.Memory.Write32(Record(1, Received), bootsPage8);
        _m.Memory.Write32(Record(1, Armed), wakes);
        _m.Memory.Write32(Record(1, Fired), 2);
        _m.Memory.Write32(RaceRecord(1, NmisSent), 2);
        _m.Memory.Write32(RaceRecord(1, SipisDropped), 2);
        _m.Memory.Write32(RaceRecord(1, BootsPage7), bootsPage7);
        _m.Memory.Write32(RaceRecord(1, BootsPage9), 1);
        var ledger = StormLedger.Read(_m, StormKind.SipiRace, 2);
        Assert.Equal(ok, ledger.Errors.Count == 0);
        Assert.Equal(ok, ledger.Suspects.Count == 0);
    }
}
