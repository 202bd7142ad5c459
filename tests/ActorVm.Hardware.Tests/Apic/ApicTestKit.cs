using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Tests.Apic;

/// <summary>Builders shared by the APIC tests. The default TSC runs at 1 GHz so one tick is one bus cycle.</summary>
internal static class ApicTestKit
{
    public const ulong OneGHz = 1_000_000_000;

    public static LocalApic NewApic(int vcpuId = 0, ulong tscHz = OneGHz, bool tscDeadline = true, bool x2Apic = true, bool cmci = true) =>
        new(vcpuId, new ApicConfig(tscHz, tscDeadline, x2Apic, 40, cmci));

    /// <summary>A hardware- and software-enabled xAPIC (SVR = 0x1FF).</summary>
    public static LocalApic Enabled(int vcpuId = 0, ulong tscHz = OneGHz)
    {
        var apic = NewApic(vcpuId, tscHz);
        apic.WriteMmio(ApicReg.Svr, 0x1FF, 0);
        return apic;
    }

    /// <summary>A software-enabled APIC switched to x2APIC mode.</summary>
    public static LocalApic EnabledX2(int vcpuId = 0, ulong tscHz = OneGHz)
    {
        var apic = NewApic(vcpuId, tscHz);
        EnterX2Apic(apic);
        Assert.True(apic.TryWriteMsr(ApicReg.ToMsr(ApicReg.Svr), 0x1FF, 0, out _));
        return apic;
    }

    public static void EnterX2Apic(LocalApic apic) =>
        Assert.True(apic.TryWriteMsr(Msr.ApicBase, apic.ApicBase | ApicBits.BaseExtd, 0, out _));

    public static uint X2(uint offset) => ApicReg.ToMsr(offset);

    public static ulong ReadX2(LocalApic apic, uint offset, ulong now = 0)
    {
        Assert.True(apic.TryReadMsr(X2(offset), now, out var v), $"RDMSR {X2(offset):X} faulted");
        return v;
    }

    public static ApicWriteEffects WriteX2(LocalApic apic, uint offset, ulong value, ulong now = 0)
    {
        Assert.True(apic.TryWriteMsr(X2(offset), value, now, out var fx), $"WRMSR {X2(offset):X} faulted");
        return fx;
    }

    public static bool Fixed(LocalApic apic, byte vector, bool level = false) =>
        apic.AcceptInterrupt(DeliveryMode.Fixed, vector, assert: true, levelTriggered: level);
}
