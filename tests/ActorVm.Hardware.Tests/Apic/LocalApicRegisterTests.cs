using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using static ActorVm.Hardware.Tests.Apic.ApicTestKit;

namespace ActorVm.Hardware.Tests.Apic;

/// <summary>
/// The register model against SDM vol. 3 tables 11-1 and 11-6: reset values (11.4.7.1), writable
/// bits and read-back in xAPIC (MMIO) and x2APIC (MSR) mode, and every x2APIC #GP case (11.12.1.2).
/// </summary>
public class LocalApicRegisterTests
{
    public static TheoryData<uint, uint> XApicResetValues => new()
    {
        { ApicReg.Id, 0x0300_0000 },
        { ApicReg.Version, 0x0006_0014 },
        { ApicReg.Tpr, 0 }, { ApicReg.Apr, 0 }, { ApicReg.Ppr, 0 }, { ApicReg.Eoi, 0 }, { ApicReg.Rrd, 0 },
        { ApicReg.Ldr, 0 }, { ApicReg.Dfr, 0xFFFF_FFFF }, { ApicReg.Svr, 0xFF },
        { ApicReg.Isr, 0 }, { ApicReg.Isr + 0x70, 0 }, { ApicReg.Tmr, 0 }, { ApicReg.Tmr + 0x70, 0 },
        { ApicReg.Irr, 0 }, { ApicReg.Irr + 0x70, 0 }, { ApicReg.Esr, 0 },
        { ApicReg.LvtCmci, 0x1_0000 }, { ApicReg.IcrLow, 0 }, { ApicReg.IcrHigh, 0 },
        { ApicReg.LvtTimer, 0x1_0000 }, { ApicReg.LvtThermal, 0x1_0000 }, { ApicReg.LvtPmc, 0x1_0000 },
        { ApicReg.LvtLint0, 0x1_0000 }, { ApicReg.LvtLint1, 0x1_0000 }, { ApicReg.LvtError, 0x1_0000 },
        { ApicReg.Tmict, 0 }, { ApicReg.Tmcct, 0 }, { ApicReg.Tdcr, 0 },
    };

    [Theory]
    [MemberData(nameof(XApicResetValues))]
    public void XApicRegisterHasItsPowerUpValue(uint offset, uint expected)
    {
        var apic = NewApic(vcpuId: 3);
        Assert.Equal(expected, apic.ReadMmio(offset, 0));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Esr, 0)); // no illegal-register error from these reads
    }

    [Fact]
    public void PowerUpStateIsXApicAtDefaultBaseSoftwareDisabled()
    {
        var bsp = NewApic(0);
        var ap = NewApic(1);
        Assert.Equal(0xFEE0_0900UL, bsp.ApicBase);
        Assert.Equal(0xFEE0_0800UL, ap.ApicBase);
        Assert.True(bsp.HardwareEnabled);
        Assert.False(bsp.SoftwareEnabled);
        Assert.False(bsp.X2ApicMode);
        Assert.True(bsp.XApicMmioActive);
        Assert.Equal(0xFEE0_0000UL, bsp.MmioBase);
    }

    [Fact]
    public void VersionWithoutCmciReportsSixLvtEntriesAndCmciIsAbsent()
    {
        var apic = NewApic(cmci: false);
        Assert.Equal(0x0005_0014u, apic.ReadMmio(ApicReg.Version, 0));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.LvtCmci, 0));
        apic.WriteMmio(ApicReg.Esr, 0, 0);
        Assert.Equal((uint)ApicError.IllegalRegisterAddress, apic.ReadMmio(ApicReg.Esr, 0));
        ApicTestKit.EnterX2Apic(apic);
        Assert.False(apic.TryReadMsr(0x82F, 0, out _));
    }

    /// <summary>(offset, value read after writing all ones, value read after writing zero) on an enabled xAPIC.</summary>
    public static TheoryData<uint, uint, uint> XApicWritableBits => new()
    {
        { ApicReg.Id, 0xFF00_0000, 0 },
        { ApicReg.Tpr, 0xFF, 0 },
        { ApicReg.Ldr, 0xFF00_0000, 0 },
        { ApicReg.Dfr, 0xFFFF_FFFF, 0x0FFF_FFFF },
        { ApicReg.IcrHigh, 0xFF00_0000, 0 },
        { ApicReg.LvtTimer, 0x7_00FF, 0 },
        { ApicReg.LvtThermal, 0x1_07FF, 0 },
        { ApicReg.LvtPmc, 0x1_07FF, 0 },
        { ApicReg.LvtCmci, 0x1_07FF, 0 },
        { ApicReg.LvtLint0, 0x1_A7FF, 0 },
        { ApicReg.LvtLint1, 0x1_A7FF, 0 },
        { ApicReg.LvtError, 0x1_00FF, 0 },
        { ApicReg.Tmict, 0xFFFF_FFFF, 0 },
        { ApicReg.Tdcr, 0xB, 0 },
    };

    [Theory]
    [MemberData(nameof(XApicWritableBits))]
    public void XApicRegisterKeepsOnlyItsWritableBits(uint offset, uint afterOnes, uint afterZero)
    {
        var apic = Enabled(vcpuId: 2);
        apic.WriteMmio(offset, 0xFFFF_FFFF, 0);
        Assert.Equal(afterOnes, apic.ReadMmio(offset, 0));
        apic.WriteMmio(offset, 0, 0);
        Assert.Equal(afterZero, apic.ReadMmio(offset, 0));
    }

    [Theory]
    [MemberData(nameof(X2ApicWritable))]
    public void X2ApicRegisterKeepsOnlyItsWritableBits(uint offset, uint afterOnes)
    {
        var apic = EnabledX2(vcpuId: 2);
        WriteX2(apic, offset, 0xFFFF_FFFF);
        Assert.Equal(afterOnes, ReadX2(apic, offset));
        WriteX2(apic, offset, 0);
        Assert.Equal(0UL, ReadX2(apic, offset));
    }

    public static TheoryData<uint, uint> X2ApicWritable => new()
    {
        { ApicReg.Tpr, 0xFF },
        { ApicReg.LvtTimer, 0x7_00FF },
        { ApicReg.LvtThermal, 0x1_07FF },
        { ApicReg.LvtPmc, 0x1_07FF },
        { ApicReg.LvtCmci, 0x1_07FF },
        { ApicReg.LvtLint0, 0x1_A7FF },
        { ApicReg.LvtLint1, 0x1_A7FF },
        { ApicReg.LvtError, 0x1_00FF },
        { ApicReg.Tmict, 0xFFFF_FFFF },
        { ApicReg.Tdcr, 0xB },
    };

    [Fact]
    public void LvtTimerModeMaskExcludesTscDeadlineWithoutCpuidSupport()
    {
        var apic = NewApic(tscDeadline: false);
        apic.WriteMmio(ApicReg.Svr, 0x1FF, 0);
        apic.WriteMmio(ApicReg.LvtTimer, 0xFFFF_FFFF, 0);
        Assert.Equal(0x3_00FFu, apic.ReadMmio(ApicReg.LvtTimer, 0));
        Assert.False(apic.TryReadMsr(Msr.TscDeadline, 0, out _));
        Assert.False(apic.TryWriteMsr(Msr.TscDeadline, 1, 0, out _));
    }

    [Theory]
    [InlineData(ApicReg.Version)]
    [InlineData(ApicReg.Apr)]
    [InlineData(ApicReg.Ppr)]
    [InlineData(ApicReg.Rrd)]
    [InlineData(ApicReg.Isr + 0x30)]
    [InlineData(ApicReg.Tmr + 0x30)]
    [InlineData(ApicReg.Irr + 0x30)]
    [InlineData(ApicReg.Tmcct)]
    public void XApicReadOnlyRegisterIgnoresWrites(uint offset)
    {
        var apic = Enabled();
        var before = apic.ReadMmio(offset, 0);
        var fx = apic.WriteMmio(offset, 0xFFFF_FFFF, 0);
        Assert.Equal(ApicWriteEffects.None, fx);
        Assert.Equal(before, apic.ReadMmio(offset, 0));
        apic.WriteMmio(ApicReg.Esr, 0, 0);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Esr, 0));
    }

    [Theory]
    [InlineData(0x000u)]
    [InlineData(0x010u)]
    [InlineData(0x040u)]
    [InlineData(0x2A0u)]
    [InlineData(0x3A0u)]
    [InlineData(0x3F0u)] // SELF_IPI exists only in x2APIC mode
    [InlineData(0xFF0u)]
    public void XApicReservedRegisterLatchesIllegalRegisterAddress(uint offset)
    {
        var apic = Enabled();
        Assert.Equal(0u, apic.ReadMmio(offset, 0));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Esr, 0)); // not visible before the ESR write
        apic.WriteMmio(ApicReg.Esr, 0, 0);
        Assert.Equal((uint)ApicError.IllegalRegisterAddress, apic.ReadMmio(ApicReg.Esr, 0));
        apic.WriteMmio(ApicReg.Esr, 0, 0);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Esr, 0)); // the write cleared it
    }

    [Fact]
    public void EsrIsWriteBeforeReadAndRaisesLvtError()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.LvtError, 0xE3, 0);
        Assert.True(Fixed(apic, 5)); // illegal vector: no IRR[5], but LVT error raised (state changed)
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Irr, 0));
        Assert.True(apic.IsIrrSet(0xE3)); // LVT error fired once
        apic.WriteMmio(ApicReg.IcrLow, 0x0000_4003, 0); // send illegal vector 3
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Esr, 0));
        apic.WriteMmio(ApicReg.Esr, 0xFFFF_FFFF, 0); // the value written does not matter
        Assert.Equal((uint)(ApicError.ReceiveIllegalVector | ApicError.SendIllegalVector), apic.ReadMmio(ApicReg.Esr, 0));
    }

    [Fact]
    public void SoftwareDisableMasksEveryLvtAndKeepsThemMasked()
    {
        var apic = Enabled();
        foreach (var off in new[] { ApicReg.LvtTimer, ApicReg.LvtThermal, ApicReg.LvtPmc, ApicReg.LvtLint0, ApicReg.LvtLint1, ApicReg.LvtError, ApicReg.LvtCmci })
        {
            apic.WriteMmio(off, 0x40, 0);
        }

        apic.WriteMmio(ApicReg.Svr, 0xFF, 0);
        foreach (var off in new[] { ApicReg.LvtTimer, ApicReg.LvtThermal, ApicReg.LvtPmc, ApicReg.LvtLint0, ApicReg.LvtLint1, ApicReg.LvtError, ApicReg.LvtCmci })
        {
            Assert.Equal(0x1_0040u, apic.ReadMmio(off, 0));
            apic.WriteMmio(off, 0x41, 0); // cannot unmask while software-disabled (SDM 11.4.7.2)
            Assert.Equal(0x1_0041u, apic.ReadMmio(off, 0));
        }
    }

    [Fact]
    public void SvrKeepsVectorEnableAndFocusBits()
    {
        var apic = NewApic();
        apic.WriteMmio(ApicReg.Svr, 0xFFFF_FFFF, 0);
        Assert.Equal(0x3FFu, apic.ReadMmio(ApicReg.Svr, 0));
        Assert.True(apic.SoftwareEnabled);
    }

    [Fact]
    public void IcrWriteSendsAndReadsBackWithoutBusy()
    {
        var apic = Enabled(vcpuId: 1);
        apic.WriteMmio(ApicReg.IcrHigh, 0x0300_0000, 0);
        var fx = apic.WriteMmio(ApicReg.IcrLow, 0xFFFF_FFFF, 0);
        Assert.Equal(0x000C_CFFFu, apic.ReadMmio(ApicReg.IcrLow, 0));
        var ipi = Assert.NotNull(fx.Ipi);
        Assert.Equal(new InterruptMessage(0xFF, DeliveryMode.ExtInt, true, true, true, Shorthand.AllExcludingSelf, 3, 1, false), ipi);

        fx = apic.WriteMmio(ApicReg.IcrLow, 0x0000_0831, 0);
        ipi = Assert.NotNull(fx.Ipi);
        Assert.Equal(new InterruptMessage(0x31, DeliveryMode.Fixed, true, false, false, Shorthand.None, 3, 1, false), ipi);
        Assert.Equal(0x0000_0831u, apic.ReadMmio(ApicReg.IcrLow, 0)); // BUSY (bit 12) never set
    }

    [Fact]
    public void X2ApicResetValuesThroughMsrs()
    {
        var apic = NewApic(vcpuId: 0x123);
        EnterX2Apic(apic);
        Assert.Equal(0x123UL, ReadX2(apic, ApicReg.Id));
        Assert.Equal(0x6_0014UL, ReadX2(apic, ApicReg.Version));
        Assert.Equal((0x12UL << 16) | (1u << 3), ReadX2(apic, ApicReg.Ldr));
        Assert.Equal(0xFFUL, ReadX2(apic, ApicReg.Svr));
        foreach (var off in new[] { ApicReg.Tpr, ApicReg.Ppr, ApicReg.Esr, ApicReg.IcrLow, ApicReg.Tmict, ApicReg.Tmcct, ApicReg.Tdcr, ApicReg.Isr, ApicReg.Tmr + 0x10, ApicReg.Irr + 0x70 })
        {
            Assert.Equal(0UL, ReadX2(apic, off));
        }

        foreach (var off in new[] { ApicReg.LvtCmci, ApicReg.LvtTimer, ApicReg.LvtThermal, ApicReg.LvtPmc, ApicReg.LvtLint0, ApicReg.LvtLint1, ApicReg.LvtError })
        {
            Assert.Equal(0x1_0000UL, ReadX2(apic, off));
        }

        Assert.False(apic.XApicMmioActive);
    }

    /// <summary>RDMSR indices that #GP in x2APIC mode: absent registers and the write-only EOI and SELF_IPI.</summary>
    [Theory]
    [InlineData(0x800u)]
    [InlineData(0x801u)]
    [InlineData(0x804u)]
    [InlineData(0x807u)]
    [InlineData(0x809u)] // APR
    [InlineData(0x80Bu)] // EOI, write-only
    [InlineData(0x80Cu)] // RRD
    [InlineData(0x80Eu)] // DFR
    [InlineData(0x829u)]
    [InlineData(0x82Eu)]
    [InlineData(0x831u)] // ICR2
    [InlineData(0x83Au)]
    [InlineData(0x83Du)]
    [InlineData(0x83Fu)] // SELF_IPI, write-only
    [InlineData(0x840u)]
    [InlineData(0x8FFu)]
    public void X2ApicReadFaults(uint msr)
    {
        var apic = EnabledX2();
        Assert.False(apic.TryReadMsr(msr, 0, out _));
    }

    /// <summary>WRMSR cases that #GP in x2APIC mode (SDM 11.12.1.2-3, table 11-6).</summary>
    [Theory]
    [InlineData(0x802u, 0UL)] // ID, read-only
    [InlineData(0x803u, 0UL)] // LVR
    [InlineData(0x809u, 0UL)] // APR absent
    [InlineData(0x80Au, 0UL)] // PPR
    [InlineData(0x80Bu, 1UL)] // nonzero EOI
    [InlineData(0x80Cu, 0UL)] // RRD
    [InlineData(0x80Du, 0UL)] // LDR, read-only
    [InlineData(0x80Eu, 0UL)] // DFR absent
    [InlineData(0x810u, 0UL)] // ISR
    [InlineData(0x818u, 0UL)] // TMR
    [InlineData(0x827u, 0UL)] // IRR
    [InlineData(0x828u, 1UL)] // nonzero ESR
    [InlineData(0x831u, 0UL)] // ICR2 absent
    [InlineData(0x839u, 0UL)] // TMCCT
    [InlineData(0x83Au, 0UL)]
    [InlineData(0x800u, 0UL)]
    [InlineData(0x808u, 1UL << 32)] // TPR, bits 63:32
    [InlineData(0x80Fu, 1UL << 63)] // SVR
    [InlineData(0x832u, 1UL << 32)] // LVTT
    [InlineData(0x838u, 1UL << 40)] // TMICT
    [InlineData(0x830u, 0x40UL | (1UL << 13))] // ICR reserved 13
    [InlineData(0x830u, 0x40UL | (1UL << 16))] // ICR reserved 16
    [InlineData(0x830u, 0x40UL | (1UL << 17))] // ICR reserved 17
    [InlineData(0x830u, 0x40UL | (1UL << 20))] // ICR reserved 31:20
    [InlineData(0x830u, 0x40UL | (1UL << 31))]
    [InlineData(0x83Fu, 0x140UL)] // SELF_IPI bits 31:8
    [InlineData(0x83Fu, 0x40UL | (1UL << 32))]
    public void X2ApicWriteFaults(uint msr, ulong value)
    {
        var apic = EnabledX2();
        Assert.False(apic.TryWriteMsr(msr, value, 0, out var fx));
        Assert.Equal(ApicWriteEffects.None, fx);
    }

    [Fact]
    public void X2ApicMsrsFaultOutsideX2ApicMode()
    {
        var apic = Enabled();
        for (uint msr = 0x800; msr <= 0x8FF; msr++)
        {
            Assert.False(apic.TryReadMsr(msr, 0, out _));
            Assert.False(apic.TryWriteMsr(msr, 0, 0, out _));
        }
    }

    [Fact]
    public void X2ApicIcrIsOneSixtyFourBitRegister()
    {
        var apic = EnabledX2(vcpuId: 5);
        var fx = WriteX2(apic, ApicReg.IcrLow, (0x1234UL << 32) | 0x0000_4CF1);
        Assert.Equal((0x1234UL << 32) | 0x4CF1, ReadX2(apic, ApicReg.IcrLow));
        Assert.Equal(new InterruptMessage(0xF1, DeliveryMode.Nmi, true, false, true, Shorthand.None, 0x1234, 5, true), fx.Ipi);
    }

    [Fact]
    public void X2ApicSelfIpiSendsFixedEdgeToSelfAndLeavesIcr()
    {
        var apic = EnabledX2(vcpuId: 7);
        var fx = WriteX2(apic, ApicReg.SelfIpi, 0xF1);
        Assert.Equal(new InterruptMessage(0xF1, DeliveryMode.Fixed, false, false, true, Shorthand.Self, 7, 7, true), fx.Ipi);
        Assert.Equal(0UL, ReadX2(apic, ApicReg.IcrLow));
    }

    [Fact]
    public void X2ApicEoiAndEsrAcceptZero()
    {
        var apic = EnabledX2();
        Fixed(apic, 0x40);
        apic.Acknowledge();
        Assert.True(WriteX2(apic, ApicReg.Eoi, 0).EventNeeded);
        Assert.False(apic.IsIsrSet(0x40));
        WriteX2(apic, ApicReg.Esr, 0);
    }

    [Fact]
    public void MmioInX2ApicModeIsInactive()
    {
        var apic = EnabledX2();
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Svr, 0));
        Assert.Equal(ApicWriteEffects.None, apic.WriteMmio(ApicReg.Tpr, 0x50, 0));
        Assert.Equal(0UL, ReadX2(apic, ApicReg.Tpr));
    }

    [Fact]
    public void UnalignedMmioReadsZeroAndWritesAreIgnored()
    {
        var apic = Enabled();
        apic.WriteMmio(ApicReg.Tpr + 4, 0x50, 0);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tpr, 0));
        apic.WriteMmio(ApicReg.Tpr, 0x50, 0);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tpr + 8, 0));
    }
}

public class LocalApicErrorInterruptTests
{
    [Fact]
    public void IllegalRegisterReadRaisesLvtErrorAndReportsIt()
    {
        var apic = ApicTestKit.Enabled();
        apic.WriteMmio(ApicReg.LvtError, 0xE4, 0);
        Assert.Equal(0u, apic.ReadMmio(0x3A0, 0, out var eventNeeded));
        Assert.True(eventNeeded);
        Assert.True(apic.IsIrrSet(0xE4));

        // Each detected error raises LVT error again; ESR accumulates until written.
        Assert.Equal(0xE4, apic.Acknowledge());
        apic.ReadMmio(0x3A0, 0, out eventNeeded);
        Assert.True(eventNeeded);
        Assert.True(apic.IsIrrSet(0xE4));

    }

    [Fact]
    public void IllegalRegisterWriteReportsEventWhenLvtErrorFires()
    {
        var apic = ApicTestKit.Enabled();
        apic.WriteMmio(ApicReg.LvtError, 0xE4, 0);
        Assert.True(apic.WriteMmio(0x3A0, 1, 0).EventNeeded);
        Assert.True(apic.IsIrrSet(0xE4));
    }
}
