using System.Runtime.CompilerServices;
using System.Text;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;

namespace ActorVm.Actors.Tests.Guests;

/// <summary>
/// Issue 3's "done when": SMP Multiboot guests on 4 vCPUs under the actor run loop (through the
/// platform's IVmRunner seam, as <c>run --kernel K --smp 4</c> does) print what QEMU prints and
/// exit with QEMU's status (Golden/, see its README).
/// </summary>
public sealed class SmpGuestSpec
{
    public static TheoryData<ImmediateExitMethod> Methods() => [ImmediateExitMethod.PreemptionTimer, ImmediateExitMethod.SelfIpi];

    [Theory(DisplayName = "smp-ipi on --smp 4: INIT/SIPI bring-up, physical/self/broadcast/lowest-priority IPIs; serial and status as on QEMU")]
    [MemberData(nameof(Methods))]
    public void SmpIpiMatchesQemu(ImmediateExitMethod method)
    {
        var kernel = SmpGuests.BuildIpi();
        SaveForQemu("smp-ipi", kernel);

        var (serial, result, _) = Boot(kernel, new VmOptions { ImmediateExit = method });

        Assert.Equal(Golden("smp-ipi.serial"), serial);
        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        Assert.Equal(GoldenStatus("smp-ipi"), result.DebugExitStatus);
    }

    [Theory(DisplayName = "smp-x2apic on --smp 4: the same program in x2APIC mode (ICR by WRMSR through the fastpath, SELF_IPI 0x83F, MSR EOI) prints what QEMU prints for smp-ipi")]
    [MemberData(nameof(Methods))]
    public void SmpX2ApicMatchesTheXApicGolden(ImmediateExitMethod method)
    {
        var kernel = SmpGuests.BuildX2Apic();
        SaveForQemu("smp-x2apic", kernel);

        var (serial, result, runner) = Boot(kernel, new VmOptions { ImmediateExit = method });

        Assert.Equal(Golden("smp-ipi.serial"), serial);
        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        Assert.Equal(GoldenStatus("smp-ipi"), result.DebugExitStatus);
        var total = runner.LastResult!.Statistics.Total;
        Assert.True(total.FastpathByHandler["X2ApicIcr"].GetValueOrDefault("ReenterGuest") + total.FastpathByHandler["X2ApicIcr"].GetValueOrDefault("ExitHandled") > 0);
        Assert.False(total.SlowpathByReason.ContainsKey("APIC_ACCESS")); // no xAPIC page in use
    }

    internal static (string Serial, RunResult Result, ActorRunner Runner) Boot(byte[] kernel, VmOptions options, int vcpus = SmpGuests.Vcpus)
    {
        var serial = new StringBuilder();
        using var machine = Machine.CreatePc(new MachineConfig(vcpus, 16), bytes =>
        {
            lock (serial)
            {
                serial.Append(Encoding.ASCII.GetString(bytes));
            }
        });
        MultibootLoader.Load(machine, kernel, "smp");
        var runner = new ActorRunner(options);
        var result = runner.Run(machine, new RunLimits(WallTime: TimeSpan.FromSeconds(20)));
        lock (serial)
        {
            return (serial.ToString(), result, runner);
        }
    }

    /// <summary>Golden/regen-with-qemu.sh sets ACTORVM_KERNEL_DIR to collect the kernels it boots on QEMU.</summary>
    internal static void SaveForQemu(string name, byte[] kernel)
    {
        if (Environment.GetEnvironmentVariable("ACTORVM_KERNEL_DIR") is { Length: > 0 } dir)
        {
            File.WriteAllBytes(Path.Combine(dir, name + ".elf32"), kernel);
        }
    }

    internal static string Golden(string file, [CallerFilePath] string source = "") =>
        File.ReadAllText(Path.Combine(Path.GetDirectoryName(source)!, "Golden", file));

    internal static int GoldenStatus(string name) =>
        int.Parse(Golden(name + ".status").Trim(), System.Globalization.CultureInfo.InvariantCulture);
}
