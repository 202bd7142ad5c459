using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using static ActorVm.Hardware.Tests.Apic.ApicTestKit;

namespace ActorVm.Hardware.Tests.Apic;

/// <summary>IA32_APIC_BASE (MSR 0x1B): reserved bits, relocation and the mode state machine (SDM 11.12.5, figure 11-27).</summary>
public class LocalApicBaseTests
{
    private const ulong Base = 0xFEE0_0000, En = ApicBits.BaseEnable, Extd = ApicBits.BaseExtd, Bsp = ApicBits.BaseBsp;

    public enum State
    {
        Disabled,
        XApic,
        X2Apic,
    }

    /// <summary>Every (from, to) pair of the state machine; the invalid state (EXTD without EN) always #GPs.</summary>
    [Theory]
    [InlineData(State.XApic, State.XApic, true)]
    [InlineData(State.XApic, State.X2Apic, true)]
    [InlineData(State.XApic, State.Disabled, true)]
    [InlineData(State.X2Apic, State.X2Apic, true)]
    [InlineData(State.X2Apic, State.XApic, false)]
    [InlineData(State.X2Apic, State.Disabled, true)]
    [InlineData(State.Disabled, State.Disabled, true)]
    [InlineData(State.Disabled, State.XApic, true)]
    [InlineData(State.Disabled, State.X2Apic, false)]
    public void ModeTransitions(State from, State to, bool allowed)
    {
        var apic = NewApic(1);
        Reach(apic, from);
        var before = apic.ApicBase;
        Assert.Equal(allowed, apic.TryWriteMsr(Msr.ApicBase, Value(to), 0, out _));
        Assert.Equal(allowed ? Value(to) : before, apic.ApicBase);
        Assert.False(apic.TryWriteMsr(Msr.ApicBase, Base | Extd, 0, out _)); // invalid state
    }

    private static ulong Value(State s) => s switch
    {
        State.Disabled => Base,
        State.XApic => Base | En,
        _ => Base | En | Extd,
    };

    private static void Reach(LocalApic apic, State s)
    {
        if (s == State.X2Apic)
        {
            Assert.True(apic.TryWriteMsr(Msr.ApicBase, Base | En | Extd, 0, out _));
        }
        else if (s == State.Disabled)
        {
            Assert.True(apic.TryWriteMsr(Msr.ApicBase, Base, 0, out _));
        }
    }

    [Theory]
    [InlineData(1UL << 0)]
    [InlineData(1UL << 7)]
    [InlineData(1UL << 9)]
    [InlineData(1UL << 40)] // MAXPHYADDR = 40
    [InlineData(1UL << 63)]
    public void ReservedBitsFault(ulong bit)
    {
        var apic = NewApic();
        Assert.False(apic.TryWriteMsr(Msr.ApicBase, Base | En | bit, 0, out _));
        Assert.Equal(Base | En | Bsp, apic.ApicBase);
    }

    [Fact]
    public void ExtdFaultsWithoutX2ApicSupport()
    {
        var apic = NewApic(x2Apic: false);
        Assert.False(apic.TryWriteMsr(Msr.ApicBase, Base | En | Extd, 0, out _));
    }

    [Fact]
    public void RelocationMovesTheMmioPage()
    {
        var apic = Enabled();
        Assert.True(apic.TryWriteMsr(Msr.ApicBase, 0xFED0_0000UL | En | Bsp, 0, out var fx));
        Assert.True(fx.ApicBaseChanged);
        Assert.Equal(0xFED0_0000UL, apic.MmioBase);
        Assert.True(apic.TryWriteMsr(Msr.ApicBase, 0xFF_FFFF_F000UL | En, 0, out _)); // highest page under MAXPHYADDR
        Assert.Equal(0xFF_FFFF_F000UL, apic.MmioBase);
        Assert.False(apic.IsBsp);
        Assert.True(apic.TryReadMsr(Msr.ApicBase, 0, out var v));
        Assert.Equal(0xFF_FFFF_F000UL | En, v);

        Assert.True(apic.TryWriteMsr(Msr.ApicBase, v, 0, out fx));
        Assert.False(fx.ApicBaseChanged);
    }

    [Fact]
    public void EnteringX2ApicSwitchesIdAndLdrAndKeepsState()
    {
        var apic = Enabled(vcpuId: 0x21);
        apic.WriteMmio(ApicReg.Tpr, 0x30, 0);
        apic.WriteMmio(ApicReg.Ldr, 0x0800_0000, 0);
        Fixed(apic, 0x77);

        Assert.True(apic.TryWriteMsr(Msr.ApicBase, Base | En | Extd, 0, out var fx));

        Assert.True(fx.ApicBaseChanged);
        Assert.True(apic.X2ApicMode);
        Assert.Equal(0x21UL, ReadX2(apic, ApicReg.Id));
        Assert.Equal((2UL << 16) | (1 << 1), ReadX2(apic, ApicReg.Ldr));
        Assert.Equal(0x30UL, ReadX2(apic, ApicReg.Tpr));
        Assert.Equal(0x1FFUL, ReadX2(apic, ApicReg.Svr));
        Assert.True(apic.IsIrrSet(0x77));
    }

    [Fact]
    public void DisableResetsStateAndReEnableRestoresXApicId()
    {
        var apic = NewApic(vcpuId: 4);
        EnterX2Apic(apic);
        WriteX2(apic, ApicReg.Svr, 0x1FF);
        WriteX2(apic, ApicReg.Tpr, 0x40);

        Assert.True(apic.TryWriteMsr(Msr.ApicBase, Base, 0, out _));
        Assert.False(apic.HardwareEnabled);
        Assert.False(apic.XApicMmioActive);
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Id, 0));

        Assert.True(apic.TryWriteMsr(Msr.ApicBase, Base | En, 0, out var fx));
        Assert.True(fx.ApicBaseChanged);
        Assert.Equal(0x0400_0000u, apic.ReadMmio(ApicReg.Id, 0));
        Assert.Equal(0xFFu, apic.ReadMmio(ApicReg.Svr, 0));
        Assert.Equal(0u, apic.ReadMmio(ApicReg.Tpr, 0));
        Assert.Equal(0xFFFF_FFFFu, apic.ReadMmio(ApicReg.Dfr, 0));
    }

    [Fact]
    public void PowerOnResetRestoresDefaultsFromAnyState()
    {
        var apic = EnabledX2(3);
        apic.Reset(isBsp: false);
        Assert.Equal(Base | En, apic.ApicBase);
        Assert.Equal(0x0300_0000u, apic.ReadMmio(ApicReg.Id, 0));
        Assert.False(apic.SoftwareEnabled);
    }

    [Fact]
    public void TheBspsLint0ResetsToExtIntAsKvmAndQemuDo_ApsAndOtherEntriesMasked()
    {
        // KVM_X86_QUIRK_LINT0_REENABLED / QEMU apic_reset_common: power-on and INIT of the BSP.
        var bsp = NewApic(0);
        Assert.Equal(0x700u, bsp.ReadMmio(ApicReg.LvtLint0, 0));
        Assert.Equal(ApicBits.Masked, bsp.ReadMmio(ApicReg.LvtLint1, 0));
        Assert.True(bsp.AcceptsPicInterrupts); // virtual wire from reset (kvm_apic_accept_pic_intr)
        bsp.WriteMmio(ApicReg.Svr, 0x1FF, 0);
        Assert.True(bsp.AcceptsPicInterrupts); // and once software-enabled, without the guest touching LINT0

        bsp.WriteMmio(ApicReg.LvtLint0, ApicBits.Masked, 0);
        bsp.InitReset();
        Assert.Equal(0x700u, bsp.ReadMmio(ApicReg.LvtLint0, 0));

        var ap = NewApic(1);
        Assert.Equal(ApicBits.Masked, ap.ReadMmio(ApicReg.LvtLint0, 0));
        Assert.False(ap.AcceptsPicInterrupts);
        ap.InitReset();
        Assert.Equal(ApicBits.Masked, ap.ReadMmio(ApicReg.LvtLint0, 0));
    }

    [Fact]
    public void OwnsTheApicMsrs()
    {
        Assert.True(LocalApic.OwnsMsr(0x1B));
        Assert.True(LocalApic.OwnsMsr(0x6E0));
        Assert.True(LocalApic.OwnsMsr(0x800));
        Assert.True(LocalApic.OwnsMsr(0x8FF));
        Assert.False(LocalApic.OwnsMsr(0x900));
        var apic = Enabled();
        Assert.False(apic.TryReadMsr(0x10, 0, out _));
        Assert.False(apic.TryWriteMsr(0x10, 0, 0, out _));
    }
}
