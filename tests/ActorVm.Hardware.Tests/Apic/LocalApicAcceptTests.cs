using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using static ActorVm.Hardware.Tests.Apic.ApicTestKit;

namespace ActorVm.Hardware.Tests.Apic;

/// <summary>Acceptance by delivery mode (KVM __apic_accept_irq; SDM 11.6.1, 11.4.7).</summary>
public class LocalApicAcceptTests
{
    [Fact]
    public void SoftwareDisabledDropsFixedButTakesNmiInitSipiSmiExtInt()
    {
        var apic = NewApic(1);
        Assert.False(Fixed(apic, 0x40));
        Assert.False(apic.AcceptInterrupt(DeliveryMode.LowestPriority, 0x40, true, false));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Irr + 0x20, 0));
        Assert.True(apic.AcceptInterrupt(DeliveryMode.Nmi, 0, true, false));
        Assert.True(apic.AcceptInterrupt(DeliveryMode.Init, 0, true, false));
        Assert.True(apic.AcceptInterrupt(DeliveryMode.StartUp, 0x9A, true, false));
        Assert.True(apic.AcceptInterrupt(DeliveryMode.Smi, 0, true, false));
        Assert.True(apic.AcceptInterrupt(DeliveryMode.ExtInt, 0, true, false));
        Assert.Equal(1, apic.PendingNmis);
        Assert.Equal(1, apic.PendingSmis);
        Assert.True(apic.HasPendingInit && apic.HasPendingSipi && apic.HasPendingExtInt && apic.HasEvents);
    }

    [Fact]
    public void HardwareDisabledTakesNothing()
    {
        var apic = Enabled(1);
        Assert.True(apic.TryWriteMsr(Msr.ApicBase, 0xFEE0_0000, 0, out _));
        foreach (var mode in Enum.GetValues<DeliveryMode>())
        {
            Assert.False(apic.AcceptInterrupt(mode, 0x40, true, false));
        }

        Assert.False(apic.HasEvents);
        Assert.Equal(-1, apic.HighestPendingDeliverable());
        Assert.True(apic.AcceptsPicInterrupts); // INTR goes straight to the core
    }

    [Fact]
    public void LevelDeassertIsDroppedAndReservedModeIgnored()
    {
        var apic = Enabled();
        Assert.False(apic.AcceptInterrupt(DeliveryMode.Fixed, 0x40, assert: false, levelTriggered: true));
        Assert.False(apic.AcceptInterrupt(DeliveryMode.Init, 0, assert: false, levelTriggered: true)); // INIT level de-assert
        Assert.False(apic.AcceptInterrupt(DeliveryMode.Reserved3, 0x40, true, false));
        Assert.True(apic.AcceptInterrupt(DeliveryMode.Fixed, 0x41, assert: false, levelTriggered: false)); // edge ignores the level bit (Linux sends fixed IPIs so)
        Assert.False(apic.HasPendingInit);
        Assert.Equal(0x41, apic.HighestIrr());
    }

    [Fact]
    public void NmisAreCountedNotCollapsed()
    {
        var apic = Enabled();
        apic.AcceptInterrupt(DeliveryMode.Nmi, 0, true, false);
        apic.AcceptInterrupt(DeliveryMode.Nmi, 0, true, false);
        Assert.Equal(2, apic.PendingNmis);
        Assert.True(apic.TakeNmi());
        Assert.Equal(1, apic.TakeAllNmis());
        Assert.False(apic.TakeNmi());
    }

    [Fact]
    public void InitReplacesPendingSipiAndSipiAfterInitKeepsBoth()
    {
        var apic = NewApic(1);
        apic.AcceptInterrupt(DeliveryMode.StartUp, 0x10, true, false);
        apic.AcceptInterrupt(DeliveryMode.Init, 0, true, false);
        Assert.True(apic.HasPendingInit);
        Assert.False(apic.HasPendingSipi);

        apic.AcceptInterrupt(DeliveryMode.StartUp, 0x9A, true, false);
        Assert.True(apic.TakePendingInit());
        apic.InitReset(); // the owner's INIT handling must not lose the SIPI behind it
        Assert.True(apic.TryTakeSipi(out var vector));
        Assert.Equal(0x9A, vector);
        Assert.False(apic.TryTakeSipi(out _));
        Assert.False(apic.TakePendingInit());
    }

    [Fact]
    public void InitResetKeepsIdAndBaseButResetsRegisters()
    {
        var apic = Enabled(1);
        apic.WriteMmio(ApicReg.Id, 0x2000_0000, 0);
        Assert.True(apic.TryWriteMsr(Msr.ApicBase, 0xFED0_0800, 0, out _));
        apic.WriteMmio(ApicReg.Tpr, 0x20, 0);
        apic.WriteMmio(ApicReg.Ldr, 0x0100_0000, 0);
        Fixed(apic, 0x40);
        apic.AcceptInterrupt(DeliveryMode.Nmi, 0, true, false);

        apic.InitReset();

        Assert.Equal(0x2000_0000u, apic.ReadMmio(ApicReg.Id, 0));
        Assert.Equal(0xFED0_0800UL, apic.ApicBase);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tpr, 0));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Ldr, 0));
        Assert.Equal(0xFFu, apic.ReadMmio(ApicReg.Svr, 0));
        Assert.Equal(-1, apic.HighestIrr());
        Assert.Equal(0, apic.PendingNmis);

        var x2 = EnabledX2(2);
        x2.InitReset();
        Assert.True(x2.X2ApicMode); // SDM 11.12.5.1: INIT keeps x2APIC mode
    }

    [Fact]
    public void LocalInterruptsFollowTheirLvt()
    {
        var apic = Enabled();
        Assert.False(apic.RaiseLocalInterrupt(LvtIndex.Lint1)); // masked
        apic.WriteMmio(ApicReg.LvtLint1, 0x400, 0); // NMI
        Assert.True(apic.RaiseLocalInterrupt(LvtIndex.Lint1));
        Assert.Equal(1, apic.PendingNmis);

        apic.WriteMmio(ApicReg.LvtLint0, 0x8000 | 0x65, 0); // fixed, level
        Assert.True(apic.RaiseLocalInterrupt(LvtIndex.Lint0));
        Assert.True(apic.IsIrrSet(0x65) && apic.IsTmrSet(0x65));
        Assert.Equal(0xC065u, apic.ReadMmio(ApicReg.LvtLint0, 0)); // remote IRR set (SDM 11.5.1)
        apic.WriteMmio(ApicReg.LvtLint0, 0x8000 | 0x65, 0); // read-only: a write keeps it
        Assert.Equal(0xC065u, apic.ReadMmio(ApicReg.LvtLint0, 0));
        Assert.Equal(0x65, apic.Acknowledge());
        Assert.Equal((byte)0x65, apic.Eoi().LevelEoiVector);
        Assert.Equal(0x8065u, apic.ReadMmio(ApicReg.LvtLint0, 0)); // EOI cleared remote IRR

        Assert.False(apic.AcceptsPicInterrupts);
        apic.WriteMmio(ApicReg.LvtLint0, 0x700, 0); // ExtINT, virtual wire
        Assert.True(apic.AcceptsPicInterrupts);
        Assert.True(apic.RaiseLocalInterrupt(LvtIndex.Lint0));
        Assert.True(apic.TakeExtInt());

        apic.WriteMmio(ApicReg.LvtThermal, 0x33, 0);
        Assert.True(apic.RaiseLocalInterrupt(LvtIndex.Thermal));
        Assert.True(apic.IsIrrSet(0x33));
    }
}
