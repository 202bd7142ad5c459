using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using static ActorVm.Hardware.Tests.Apic.ApicTestKit;

namespace ActorVm.Hardware.Tests.Apic;

/// <summary>
/// The LVT timer with a manual clock (SDM 11.5.4; KVM lapic.c timer interface). Like KVM's
/// apic_bus_clock_test it iterates every TDCR encoding with its divide count and checks that a
/// count of TMICT lasts TMICT × divisor bus cycles (1 GHz bus), converted to guest TSC ticks.
/// </summary>
public class LocalApicTimerTests
{
    private const uint LvttVector = 0xEC;
    private const uint OneShot = LvttVector, Periodic = LvttVector | (1 << 17), TscDeadlineMode = LvttVector | (2 << 17);

    /// <summary>(TDCR, divide count), SDM figure 11-10; bit 2 is reserved and ignored.</summary>
    public static TheoryData<uint, uint> Tdcrs => new()
    {
        { 0x0, 2 }, { 0x1, 4 }, { 0x2, 8 }, { 0x3, 16 },
        { 0x8, 32 }, { 0x9, 64 }, { 0xA, 128 }, { 0xB, 1 },
        { 0x4, 2 }, { 0x7, 16 }, { 0xF, 1 }, { 0xFFFF_FFF4, 2 },
    };

    [Theory]
    [MemberData(nameof(Tdcrs))]
    public void DivisorFormula(uint tdcr, uint divisor) => Assert.Equal(divisor, LocalApic.DivisorOf(tdcr));

    [Theory]
    [MemberData(nameof(Tdcrs))]
    public void OneShotLastsTmictTimesDivisorBusCycles(uint tdcr, uint divisor)
    {
        foreach (var tscHz in new ulong[] { OneGHz, 2_500_000_000, 1_234_567_890 })
        {
            var apic = Enabled(tscHz: tscHz);
            const ulong start = 1_000_000;
            const uint tmict = 100_000;
            apic.WriteMmio(ApicReg.Tdcr, tdcr, start);
            apic.WriteMmio(ApicReg.LvtTimer, OneShot, start);
            var fx = apic.WriteMmio(ApicReg.Tmict, tmict, start);
            Assert.True(fx.TimerChanged);

            var ns = (ulong)tmict * divisor;
            var ticks = (ulong)(((UInt128)ns * tscHz + 999_999_999) / 1_000_000_000);
            Assert.Equal(start + ticks, apic.TimerDeadline);
            Assert.Equal(tmict, apic.ReadMmio(ApicReg.Tmcct, start));

            // A quarter of the way: TMCCT counts down on the guest clock.
            var quarter = start + ticks / 4;
            var expected = tmict - (uint)(apic.TscToNs(ticks / 4) / divisor);
            Assert.InRange(apic.ReadMmio(ApicReg.Tmcct, quarter), expected - 1, expected);

            Assert.False(apic.TimerExpired(start + ticks - 1));
            Assert.True(apic.TimerExpired(start + ticks));
            Assert.True(apic.IsIrrSet((int)LvttVector));
            Assert.Equal(0u, apic.ReadMmio(ApicReg.Tmcct, start + ticks + 1));
            Assert.Equal(ulong.MaxValue, apic.TimerDeadline);
        }
    }

    [Fact]
    public void TmcctCountsDownExactlyAtOneGHz()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0x1, 0); // ÷4
        apic.WriteMmio(ApicReg.LvtTimer, OneShot, 0);
        apic.WriteMmio(ApicReg.Tmict, 1000, 100);
        Assert.Equal(1000u, apic.ReadMmio(ApicReg.Tmcct, 100));
        Assert.Equal(999u, apic.ReadMmio(ApicReg.Tmcct, 104));
        Assert.Equal(750u, apic.ReadMmio(ApicReg.Tmcct, 1100));
        Assert.Equal(1u, apic.ReadMmio(ApicReg.Tmcct, 4099));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tmcct, 4100));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tmcct, 9999));
        Assert.Equal(1000u, apic.ReadMmio(ApicReg.Tmict, 9999));
    }

    [Fact]
    public void OneShotFiresOnceAndStaleCallsDoNothing()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0);
        apic.WriteMmio(ApicReg.LvtTimer, OneShot, 0);
        apic.WriteMmio(ApicReg.Tmict, 0x10000, 0);
        Assert.True(apic.TimerExpired(0x10000));
        Assert.False(apic.TimerExpired(0x20000));
        Assert.Equal(1UL, apic.TimerExpiries);
        Assert.Equal((int)LvttVector, apic.Acknowledge());
        Assert.Equal(-1, apic.HighestIrr());
    }

    [Fact]
    public void TmictZeroStopsTheTimer()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.LvtTimer, Periodic, 0);
        apic.WriteMmio(ApicReg.Tmict, 500_000, 0);
        Assert.NotEqual(ulong.MaxValue, apic.TimerDeadline);
        Assert.True(apic.WriteMmio(ApicReg.Tmict, 0, 10).TimerChanged);
        Assert.Equal(ulong.MaxValue, apic.TimerDeadline);
        Assert.False(apic.TimerExpired(ulong.MaxValue - 1));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tmcct, 20));
        Assert.Equal(0UL, apic.TimerExpiries);
    }

    [Fact]
    public void PeriodicReArmsFromPreviousTargetNotFromNow()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0);
        apic.WriteMmio(ApicReg.LvtTimer, Periodic, 0);
        apic.WriteMmio(ApicReg.Tmict, 1_000_000, 5); // 1 ms ≥ 200 µs: no clamp
        Assert.Equal(1_000_005UL, apic.TimerDeadline);

        Assert.True(apic.TimerExpired(1_000_300)); // 295 ticks late
        Assert.Equal(2_000_005UL, apic.TimerDeadline);
        Assert.Equal(1_000_000 - 295u, apic.ReadMmio(ApicReg.Tmcct, 1_000_300));
        apic.Acknowledge();
        apic.Eoi();

        Assert.True(apic.TimerExpired(2_000_005));
        Assert.Equal(3_000_005UL, apic.TimerDeadline);
        Assert.Equal(2UL, apic.TimerExpiries);
        Assert.Equal(0UL, apic.TimerCoalesced);
    }

    [Fact]
    public void PeriodicTmcctReloadsWhenExpiryIsNotYetProcessed()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0);
        apic.WriteMmio(ApicReg.LvtTimer, Periodic, 0);
        apic.WriteMmio(ApicReg.Tmict, 1_000_000, 0);
        Assert.Equal(1_000_000u - 250, apic.ReadMmio(ApicReg.Tmcct, 1_000_250));
    }

    [Fact]
    public void PeriodicPeriodIsClampedTo200Microseconds()
    {
        var apic = Enabled(tscHz: 3_000_000_000);
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0);
        apic.WriteMmio(ApicReg.LvtTimer, Periodic, 0);
        apic.WriteMmio(ApicReg.Tmict, 10, 0); // 10 ns asked
        Assert.Equal(200_000UL, apic.TimerPeriodNs);
        Assert.Equal(600_000UL, apic.TimerDeadline); // 200 µs at 3 GHz
        Assert.True(apic.TimerExpired(600_000));
        Assert.Equal(1_200_000UL, apic.TimerDeadline);
        Assert.Equal(200_000UL, LocalApic.MinPeriodicPeriodNs);

        // One-shot is not clamped.
        apic.WriteMmio(ApicReg.LvtTimer, OneShot, 0);
        apic.WriteMmio(ApicReg.Tmict, 10, 2_000_000);
        Assert.Equal(2_000_030UL, apic.TimerDeadline);
    }

    [Fact]
    public void ExpiriesCoalesceWhileLvttIsPendingInIrr()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0);
        apic.WriteMmio(ApicReg.LvtTimer, Periodic, 0);
        apic.WriteMmio(ApicReg.Tmict, 1_000_000, 0);
        Assert.True(apic.TimerExpired(1_000_000));
        Assert.False(apic.TimerExpired(2_000_000)); // still in IRR: counted, not duplicated
        Assert.Equal(2UL, apic.TimerExpiries);
        Assert.Equal(1UL, apic.TimerCoalesced);

        apic.Acknowledge(); // IRR → ISR: the next expiry may pend again
        Assert.True(apic.TimerExpired(3_000_000));
        Assert.Equal(1UL, apic.TimerCoalesced);
    }

    [Fact]
    public void LateOwnerSkipsMissedPeriodsAsCoalesced()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0);
        apic.WriteMmio(ApicReg.LvtTimer, Periodic, 0);
        apic.WriteMmio(ApicReg.Tmict, 1_000_000, 0);
        Assert.True(apic.TimerExpired(3_500_000)); // targets 1, 2, 3 ms passed
        Assert.Equal(4_000_000UL, apic.TimerDeadline);
        Assert.Equal(3UL, apic.TimerExpiries);
        Assert.Equal(2UL, apic.TimerCoalesced);
        Assert.Equal(1, Enumerable.Range(0, 256).Count(apic.IsIrrSet));
    }

    [Fact]
    public void MaskedLvttCountsButDoesNotInterrupt()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0);
        apic.WriteMmio(ApicReg.LvtTimer, OneShot | ApicBits.Masked, 0);
        apic.WriteMmio(ApicReg.Tmict, 100, 0);
        Assert.False(apic.TimerExpired(100));
        Assert.Equal(1UL, apic.TimerExpiries);
        Assert.Equal(1UL, apic.TimerMasked);
        Assert.Equal(-1, apic.HighestIrr());
    }

    [Fact]
    public void TdcrChangeRescalesTheRemainingCount()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0); // ÷1
        apic.WriteMmio(ApicReg.LvtTimer, OneShot, 0);
        apic.WriteMmio(ApicReg.Tmict, 1000, 0);
        Assert.True(apic.WriteMmio(ApicReg.Tdcr, 0x0, 400).TimerChanged); // ÷2: 600 ns left become 1200
        Assert.Equal(1600UL, apic.TimerDeadline);
        Assert.Equal(600u, apic.ReadMmio(ApicReg.Tmcct, 400));
    }

    [Fact]
    public void TscDeadlineInThePastFiresOnceAndReadsZero()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.LvtTimer, TscDeadlineMode, 0);
        Assert.True(apic.TryWriteMsr(Msr.TscDeadline, 5_000, 10_000, out var fx));
        Assert.True(fx.EventNeeded);
        Assert.True(apic.IsIrrSet((int)LvttVector));
        Assert.Equal(ulong.MaxValue, apic.TimerDeadline);
        Assert.True(apic.TryReadMsr(Msr.TscDeadline, 10_000, out var value));
        Assert.Equal(0UL, value);
        Assert.False(apic.TimerExpired(20_000));
        Assert.Equal(1UL, apic.TimerExpiries);
    }

    [Fact]
    public void TscDeadlineEqualToNowFiresAtOnce()
    {
        var apic = EnabledX2();
        WriteX2(apic, ApicReg.LvtTimer, 0xEF | (2 << 17));
        Assert.True(apic.TryWriteMsr(Msr.TscDeadline, 777, 777, out var fx));
        Assert.True(fx.EventNeeded);
        Assert.Equal(0xEF, apic.Acknowledge());
    }

    [Fact]
    public void TscDeadlineInTheFutureArmsThenReadsZeroAfterTheInterrupt()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.LvtTimer, TscDeadlineMode, 0);
        Assert.True(apic.TryWriteMsr(Msr.TscDeadline, 50_000, 1_000, out var fx));
        Assert.True(fx.TimerChanged);
        Assert.False(fx.EventNeeded);
        Assert.Equal(50_000UL, apic.TimerDeadline);
        Assert.True(apic.TryReadMsr(Msr.TscDeadline, 2_000, out var v) && v == 50_000);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tmcct, 2_000)); // TMCCT is 0 in TSC-deadline mode
        Assert.False(apic.TimerExpired(49_999));
        Assert.True(apic.TimerExpired(50_000));
        Assert.True(apic.TryReadMsr(Msr.TscDeadline, 50_001, out v) && v == 0);

        // Writing 0 disarms.
        apic.TryWriteMsr(Msr.TscDeadline, 90_000, 60_000, out _);
        apic.TryWriteMsr(Msr.TscDeadline, 0, 60_000, out _);
        Assert.Equal(ulong.MaxValue, apic.TimerDeadline);
    }

    [Fact]
    public void TscDeadlineMsrIsInertOutsideTscDeadlineMode()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.LvtTimer, OneShot, 0);
        Assert.True(apic.TryWriteMsr(Msr.TscDeadline, 123, 0, out var fx));
        Assert.Equal(ApicWriteEffects.None, fx);
        Assert.True(apic.TryReadMsr(Msr.TscDeadline, 0, out var v));
        Assert.Equal(0UL, v);
        Assert.Equal(ulong.MaxValue, apic.TimerDeadline);
    }

    [Fact]
    public void TmictIsIgnoredInTscDeadlineMode()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.LvtTimer, TscDeadlineMode, 0);
        apic.WriteMmio(ApicReg.Tmict, 1000, 0);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tmict, 0));
        Assert.Equal(ulong.MaxValue, apic.TimerDeadline);
    }

    [Fact]
    public void SwitchingIntoOrOutOfTscDeadlineModeDisarms()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.LvtTimer, Periodic, 0);
        apic.WriteMmio(ApicReg.Tmict, 1_000_000, 0);
        Assert.True(apic.WriteMmio(ApicReg.LvtTimer, TscDeadlineMode, 10).TimerChanged);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tmict, 10));
        Assert.Equal(ulong.MaxValue, apic.TimerDeadline);

        apic.TryWriteMsr(Msr.TscDeadline, 5_000_000, 10, out _);
        Assert.True(apic.WriteMmio(ApicReg.LvtTimer, OneShot, 20).TimerChanged);
        Assert.Equal(ulong.MaxValue, apic.TimerDeadline);
        apic.WriteMmio(ApicReg.LvtTimer, TscDeadlineMode, 30);
        Assert.True(apic.TryReadMsr(Msr.TscDeadline, 30, out var v));
        Assert.Equal(0UL, v); // the deadline was zeroed by the switch
    }

    [Fact]
    public void OneShotToPeriodicKeepsTheRunningCount()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tdcr, 0xB, 0);
        apic.WriteMmio(ApicReg.LvtTimer, OneShot, 0);
        apic.WriteMmio(ApicReg.Tmict, 1_000_000, 0);
        Assert.False(apic.WriteMmio(ApicReg.LvtTimer, Periodic, 10).TimerChanged);
        Assert.Equal(1_000_000UL, apic.TimerDeadline);
        apic.TimerExpired(1_000_000);
        Assert.Equal(2_000_000UL, apic.TimerDeadline); // now periodic
    }

    [Fact]
    public void HardwareDisableStopsTheTimer()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.LvtTimer, OneShot, 0);
        apic.WriteMmio(ApicReg.Tmict, 1000, 0);
        Assert.True(apic.TryWriteMsr(Msr.ApicBase, 0xFEE0_0000, 0, out var fx));
        Assert.True(fx.TimerChanged);
        Assert.Equal(ulong.MaxValue, apic.TimerDeadline);
    }
}
