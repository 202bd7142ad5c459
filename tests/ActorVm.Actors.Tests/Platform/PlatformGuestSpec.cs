using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Tests.Platform;

/// <summary>
/// The platform guests (<see cref="PlatformGuests"/>) booted like <c>qemu-system-x86_64 -kernel</c>
/// boots them: Machine.CreatePc, the Multiboot loader, the actor run loop with every vCPU. Their
/// serial output and exit status must equal QEMU's (Golden/, see regen-with-qemu.sh). QEMU 7.2's
/// TCG "max" CPU offers no TSC-deadline timer, so the golden runs use a model without it; the
/// TSC-deadline checks run separately with it on.
/// </summary>
public sealed class PlatformGuestSpec
{
    private static readonly CpuModel QemuTcgMax = CpuModel.Default with { TscDeadline = false };

    public static TheoryData<string, int> Goldens() => new()
    {
        { "pc-devices", 1 },
        { "pc-devices", 4 },
        { "pc-ioapic", 1 },
        { "pc-pic", 1 },
        { "pc-reset", 1 },
        { "cr8-apic-off", 1 },
        { "longmode-4m", 1 },
        { "longmode-4m", 2 },
        { "apic-smp", 1 },
        { "apic-smp", 2 },
        { "apic-smp", 4 },
        { "apic-smp", 8 },
        { "apic-smp", 255 }, // every xAPIC ID: INIT/SIPI, a physical IPI to each AP, broadcasts
    };

    [Theory(Timeout = 30_000)]
    [MemberData(nameof(Goldens))]
    public async Task MatchesQemuGolden(string guest, int smp)
    {
        var (serial, result) = await Boot(guest, smp, QemuTcgMax);
        var expectedStatus = int.Parse(Golden($"{guest}-smp{smp}.status").Trim(), CultureInfo.InvariantCulture);
        Assert.Equal(Golden($"{guest}-smp{smp}.serial"), serial);
        if (guest == "pc-reset")
        {
            Assert.Equal(VmExitKind.Reset, result.Kind);
        }
        else
        {
            Assert.Equal(VmExitKind.Shutdown, result.Kind);
        }

        Assert.Equal(expectedStatus, result.ExitCode);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(TimerBackend.Hv)]
    [InlineData(TimerBackend.Sw)]
    public async Task ApicTimers_TscDeadlineFiresOnceAndReadsZero(TimerBackend backend)
    {
        var (serial, result) = await Boot("apic-smp", 2, CpuModel.Default, backend);
        Assert.Contains("tsc-deadline msr reads 0 after expiry ok\n", serial);
        Assert.Contains("tsc-deadline timer: two interrupts for two deadlines ok\n", serial);
        Assert.Contains("one-shot timer fires once ok\n", serial);
        Assert.Contains("periodic timer fires repeatedly ok\n", serial);
        Assert.EndsWith("PASS\n", serial);
        Assert.Equal(1, result.ExitCode);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    public async Task ApicSmp_StartsEveryApThroughTheTrampolineAtZero(int smp)
    {
        var (serial, result) = await Boot("apic-smp", smp, QemuTcgMax);
        Assert.Contains($"cpus 0x{smp:x8}, aps up 0x{smp - 1:x8}\n", serial);
        Assert.DoesNotContain("FAILED", serial);
        Assert.Equal(1, result.ExitCode);
    }

    /// <summary>
    /// SDM 11.4.3: with IA32_APIC_BASE.EN clear the PIC's INTR goes to the core whatever LINT0
    /// says. QEMU 7.2 TCG loses this interrupt (hence no golden); the guest would halt forever, so
    /// a failure shows as the test's timeout.
    /// </summary>
    [Theory(Timeout = 30_000)]
    [InlineData(TimerBackend.Hv)]
    [InlineData(TimerBackend.Sw)]
    public async Task PicExtInt_ApicDisabled_PicDrivesIntrDespiteMaskedLint0(TimerBackend backend)
    {
        var (serial, result) = await Boot("pc-pic-lint0-masked", 1, CpuModel.Default, backend);
        Assert.Equal(
            "lint0 masked: pic intr held off, self-ipi taken ok\n" +
            "self-ipi while pic intr is held off ok\n" +
            "lint0 extint: irq 3 at vector 0x23 ok\n" +
            "imr masks irq 3 ok\n" +
            "irq 3 latched while masked, delivered on unmask ok\n" +
            "pit irq 0 through the pic ok\n" +
            "apic disabled, lint0 masked: pic drives intr directly ok\n" +
            "PASS\n", serial);
        Assert.Equal(1, result.ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task CpuRules_NmiLatch_FaultRips_PvSendIpi()
    {
        var (serial, result) = await Boot("cpu-rules", 2, CpuModel.Default);
        Assert.Equal(
            "nmi blocked until iret, one latched ok\n" +
            "#gp from a bad wrmsr at its own eip ok\n" +
            "#ud from ud2 at its own eip ok\n" +
            "pv send-ipi returns the number of targets ok\n" +
            "pv send-ipi reaches apic 1 ok\n" +
            "unknown hypercall returns -KVM_ENOSYS ok\n" +
            "PASS\n", serial);
        Assert.Equal(1, result.ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task CpuRules_WithoutPvSendIpi_TheGuestSeesNoFeature()
    {
        var (serial, _) = await Boot("cpu-rules", 2, CpuModel.Default with { PvSendIpi = false });
        Assert.Contains("pv send-ipi not offered\n", serial);
    }

    private static async Task<(string Serial, VmResult Result)> Boot(string guest, int smp, CpuModel model, TimerBackend backend = TimerBackend.Hv)
    {
        var output = new MemoryStream();
        var config = new MachineConfig(smp, 128) { CpuModel = model };
        using var machine = Machine.CreatePc(config, bytes =>
        {
            lock (output)
            {
                output.Write(bytes);
            }
        });
        // Stale bytes where the 4 MiB kernel's BSS goes: the loader, not fresh RAM, must zero it.
        machine.Memory.Fill(HighLoadKernel.ImageEnd, HighLoadKernel.BssBytes, 0x55);
        MultibootLoader.Load(machine, GuestPrograms.Find(guest)!.Build(KernelFormat.Elf32), guest);
        var result = await VmRunner.RunAsync(machine, new VmOptions
        {
            Vcpus = smp,
            MemoryMiB = 128,
            Timer = backend,
            Timeout = TimeSpan.FromSeconds(20),
        });
        Assert.True(result.Kind is VmExitKind.Shutdown or VmExitKind.Reset, $"{result.Kind}: {result.Detail}");
        lock (output)
        {
            return (Encoding.ASCII.GetString(output.ToArray()), result);
        }
    }

    private static string Golden(string file, [CallerFilePath] string source = "") =>
        File.ReadAllText(Path.Combine(Path.GetDirectoryName(source)!, "Golden", file));
}
