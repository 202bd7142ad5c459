namespace ActorVm.Hardware.Apic;

/// <summary>
/// One local APIC (SDM vol. 3 chapter 11; KVM lapic.c): a pure register and state model,
/// single-threaded, with time passed in as guest TSC. The LapicActor owns an instance.
/// CONTRACT SKELETON: implemented by the APIC work (issue 4); members marked TODO throw.
/// </summary>
public sealed partial class LocalApic
{
    public LocalApic(int vcpuId, ApicConfig config)
    {
        VcpuId = vcpuId;
        Config = config;
    }

    public int VcpuId { get; }

    public ApicConfig Config { get; }
}

/// <summary>Per-VM APIC configuration.</summary>
/// <param name="TscHz">Guest TSC frequency; the APIC bus clock is 1 GHz (KVM's APIC_BUS_CYCLE_NS = 1) expressed in TSC ticks.</param>
/// <param name="TscDeadline">CPUID.1:ECX[24]: LVTT may select TSC-deadline mode.</param>
/// <param name="X2Apic">CPUID.1:ECX[21]: IA32_APIC_BASE.EXTD may be set.</param>
/// <param name="PhysicalAddressBits">MAXPHYADDR: IA32_APIC_BASE bits above it #GP.</param>
public sealed record ApicConfig(ulong TscHz, bool TscDeadline = true, bool X2Apic = true, int PhysicalAddressBits = 40)
{
    /// <summary>KVM's min_timer_period_us default: a periodic timer never fires more often.</summary>
    public static readonly TimeSpan MinPeriodicPeriod = TimeSpan.FromMicroseconds(200);
}
