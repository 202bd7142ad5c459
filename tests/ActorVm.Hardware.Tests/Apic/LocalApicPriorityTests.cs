using ActorVm.Hardware.Apic;
using static ActorVm.Hardware.Tests.Apic.ApicTestKit;

namespace ActorVm.Hardware.Tests.Apic;

/// <summary>TPR/PPR/APR (SDM 11.8.3.1, 11.6.2.4), acknowledge (IRR→ISR) and EOI sequences (SDM 11.8.4-5).</summary>
public class LocalApicPriorityTests
{
    /// <summary>(TPR, in-service vector or -1, expected PPR).</summary>
    [Theory]
    [InlineData(0x00, -1, 0x00)]
    [InlineData(0x25, -1, 0x25)]
    [InlineData(0x20, 0x35, 0x30)]
    [InlineData(0x45, 0x35, 0x45)]
    [InlineData(0x35, 0x3F, 0x35)] // same class: TPR wins, low nibble kept
    [InlineData(0x00, 0xFE, 0xF0)]
    public void PprFollowsTprAndHighestInService(int tpr, int isr, int ppr)
    {
        var apic = Enabled();
        if (isr >= 0)
        {
            Fixed(apic, (byte)isr);
            Assert.Equal((byte)isr, apic.Acknowledge());
        }

        apic.WriteMmio(ApicReg.Tpr, (uint)tpr, 0);
        Assert.Equal((uint)ppr, apic.ReadMmio(ApicReg.Ppr, 0));
        Assert.Equal((byte)ppr, apic.Ppr);
    }

    [Theory]
    [InlineData(0x30, 0x35, -1)]  // same class as PPR: held
    [InlineData(0x30, 0x45, 0x45)]
    [InlineData(0x3F, 0x40, 0x40)]
    [InlineData(0xF0, 0xFF, -1)]
    [InlineData(0x00, 0x10, 0x10)]
    public void DeliverableOnlyWhenClassBeatsPpr(int tpr, int vector, int expected)
    {
        var apic = Enabled();
        apic.SetTpr((byte)tpr);
        Fixed(apic, (byte)vector);
        Assert.Equal(expected, apic.HighestPendingDeliverable());
        Assert.Equal(expected >= 0, apic.TryAcknowledge(out _));
    }

    [Fact]
    public void AcknowledgeVectorTakesTheChosenVectorWithoutPriorityCheck()
    {
        // kvm_apic_ack_interrupt: the caller chose the vector; a masked one moves all the same.
        var apic = Enabled();
        apic.SetTpr(0x40);
        Fixed(apic, 0x41);
        Fixed(apic, 0x30);
        Assert.Equal(-1, apic.HighestPendingDeliverable());
        Assert.True(apic.AcknowledgeVector(0x30));
        Assert.False(apic.IsIrrSet(0x30));
        Assert.True(apic.IsIsrSet(0x30));
        Assert.True(apic.IsIrrSet(0x41));
        Assert.Equal(0x40, apic.Ppr); // TPR's class still beats ISRV 0x30
        Assert.False(apic.AcknowledgeVector(0x30)); // no longer in IRR: nothing changes
        Assert.False(apic.AcknowledgeVector(0x55));
        Assert.False(apic.IsIsrSet(0x55));
    }

    [Fact]
    public void AcknowledgeMovesHighestIrrToIsr()
    {
        var apic = Enabled();
        Fixed(apic, 0x41);
        Fixed(apic, 0x80);
        Assert.Equal(0x80, apic.HighestPendingDeliverable());
        Assert.Equal(0x80, apic.Acknowledge());
        Assert.False(apic.IsIrrSet(0x80));
        Assert.True(apic.IsIsrSet(0x80));
        Assert.Equal(0x80u, apic.ReadMmio(ApicReg.Ppr, 0));
        Assert.Equal(1u, apic.ReadMmio(ApicReg.Isr + 0x40, 0)); // vector 0x80 = bit 0 of ISR[4]
        Assert.Equal(2u, apic.ReadMmio(ApicReg.Irr + 0x20, 0)); // vector 0x41 = bit 1 of IRR[2]
        Assert.Equal(-1, apic.HighestPendingDeliverable());
        Assert.Throws<InvalidOperationException>(() => apic.Acknowledge());
    }

    [Fact]
    public void EoiUnmasksLowerPendingVector()
    {
        var apic = Enabled();
        Fixed(apic, 0x50);
        apic.Acknowledge();
        Fixed(apic, 0x40);
        Assert.Equal(-1, apic.HighestPendingDeliverable());

        var fx = apic.WriteMmio(ApicReg.Eoi, 0, 0);

        Assert.True(fx.EventNeeded);
        Assert.Null(fx.LevelEoiVector);
        Assert.False(apic.IsIsrSet(0x50));
        Assert.Equal(0x40, apic.HighestPendingDeliverable());
    }

    [Fact]
    public void HigherClassNestsAndEoiClearsHighestFirst()
    {
        var apic = Enabled();
        Fixed(apic, 0x40);
        apic.Acknowledge();
        Fixed(apic, 0x60);
        Assert.Equal(0x60, apic.Acknowledge());
        Assert.True(apic.IsIsrSet(0x40) && apic.IsIsrSet(0x60));

        apic.Eoi();
        Assert.False(apic.IsIsrSet(0x60));
        Assert.True(apic.IsIsrSet(0x40));
        Assert.Equal(0x40, apic.Ppr);
        apic.Eoi();
        Assert.Equal(-1, apic.HighestIsr());
    }

    [Fact]
    public void EoiWithEmptyIsrDoesNothing()
    {
        var apic = Enabled();
        Fixed(apic, 0x40);
        Assert.Equal(ApicWriteEffects.None, apic.WriteMmio(ApicReg.Eoi, 0, 0));
        Assert.True(apic.IsIrrSet(0x40));
    }

    [Fact]
    public void LevelTriggeredEoiReportsVectorForIoApic()
    {
        var apic = Enabled();
        Fixed(apic, 0x70, level: true);
        Assert.True(apic.IsTmrSet(0x70));
        Assert.Equal(1u << 16, apic.ReadMmio(ApicReg.Tmr + 0x30, 0));
        apic.Acknowledge();
        var fx = apic.WriteMmio(ApicReg.Eoi, 0, 0);
        Assert.Equal((byte)0x70, fx.LevelEoiVector);

        Fixed(apic, 0x70); // an edge re-delivery clears TMR
        Assert.False(apic.IsTmrSet(0x70));
    }

    [Fact]
    public void TprWriteMasksAndUnmasksWithEventOnDrop()
    {
        var apic = Enabled();
        Fixed(apic, 0x55);
        Assert.False(apic.WriteMmio(ApicReg.Tpr, 0x60, 0).EventNeeded);
        Assert.Equal(-1, apic.HighestPendingDeliverable());
        Assert.True(apic.WriteMmio(ApicReg.Tpr, 0x40, 0).EventNeeded);
        Assert.Equal(0x55, apic.HighestPendingDeliverable());
    }

    [Fact]
    public void Cr8MirrorsTprHighNibble()
    {
        var apic = Enabled();
        apic.SetTpr(0x9A);
        Assert.Equal(9UL, apic.Cr8);
        apic.SetCr8(0x3);
        Assert.Equal(0x30, apic.Tpr);
        Assert.Equal(0x30u, apic.ReadMmio(ApicReg.Tpr, 0));
    }

    /// <summary>(TPR, ISR vector or -1, IRR vector or -1, expected APR) per SDM figure 11-15.</summary>
    [Theory]
    [InlineData(0x00, -1, -1, 0x00)]
    [InlineData(0x35, -1, 0x21, 0x35)]
    [InlineData(0x35, 0x21, 0x32, 0x35)]  // TPR class ≥ IRRV class and > ISRV class
    [InlineData(0x35, -1, 0x51, 0x50)]    // IRRV class higher
    [InlineData(0x35, 0x61, -1, 0x60)]    // ISRV class higher
    [InlineData(0x35, 0x31, -1, 0x30)]    // TPR class not above ISRV class
    public void AprPerSdm(int tpr, int isr, int irr, int apr)
    {
        var apic = Enabled();
        if (isr >= 0)
        {
            Fixed(apic, (byte)isr);
            apic.Acknowledge();
        }

        apic.SetTpr((byte)tpr);
        if (irr >= 0)
        {
            Fixed(apic, (byte)irr);
        }

        Assert.Equal((uint)apr, apic.ReadMmio(ApicReg.Apr, 0));
    }

    [Fact]
    public void NoVectorIsInServiceTwice()
    {
        var apic = Enabled();
        Fixed(apic, 0x40);
        apic.Acknowledge();
        Fixed(apic, 0x40); // same vector again while in service: waits in IRR (same class as PPR)
        Assert.True(apic.IsIrrSet(0x40));
        Assert.Equal(-1, apic.HighestPendingDeliverable());
        apic.Eoi();
        Assert.Equal(0x40, apic.Acknowledge());
    }
}
