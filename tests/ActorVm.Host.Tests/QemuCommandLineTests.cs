using System.Text;
using ActorVm.Hardware.Guests;

namespace ActorVm.Host.Tests;

/// <summary>A QEMU command line with only the program name changed: -kernel, -smp, -cpu, -device, -nographic, …</summary>
public sealed class QemuCommandLineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("actorvm-qemu-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (int Code, string Stdout, string Stderr) Run(string guest, params string[] qemuArgs)
    {
        var kernel = Path.Combine(_dir, guest + ".elf32");
        File.WriteAllBytes(kernel, GuestPrograms.Find(guest)!.Build(KernelFormat.Elf32));
        var serial = new MemoryStream();
        var error = new StringWriter();
        string[] args = ["run", "-kernel", kernel, .. qemuArgs];
        var code = HostApp.Run(args, serial, new StringWriter(), error); // the actor VM, as the console host runs it
        return (code, Encoding.ASCII.GetString(serial.ToArray()), error.ToString());
    }

    private static readonly string[] QemuDevices =
        ["-nographic", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "pc-testdev", "-display", "none", "-monitor", "none"];

    [Fact]
    public void QemuCommandLine_RunsTheSmpGuest()
    {
        var (code, stdout, stderr) = Run("apic-smp", [.. QemuDevices, "-smp", "2", "-cpu", "max,-tsc-deadline", "-m", "128"]);
        Assert.True(code == 1, stderr);
        Assert.Contains("cpus 0x00000002, aps up 0x00000001\n", stdout);
        Assert.Contains("tsc-deadline not offered\n", stdout);
        Assert.EndsWith("PASS\n", stdout);
    }

    [Fact]
    public void NoReboot_GuestResetEndsTheRunWithStatusZero()
    {
        var (code, stdout, stderr) = Run("pc-reset", [.. QemuDevices, "-no-reboot"]);
        Assert.Equal(0, code);
        Assert.Equal("resetting through 0xcf9\n", stdout);
        Assert.Contains("reset by the guest", stderr);
    }

    [Theory]
    [InlineData("e1000", "-device e1000 is not supported (supported: isa-debug-exit,iobase=0xf4,iosize=0x4; pc-testdev)")]
    [InlineData("isa-debug-exit", "-device isa-debug-exit: isa-debug-exit is only available at iobase=0xf4,iosize=0x4")]
    [InlineData("isa-debug-exit,iobase=0x501,iosize=2", "-device isa-debug-exit,iobase=0x501,iosize=2: isa-debug-exit is only available at iobase=0xf4,iosize=0x4")]
    [InlineData("pc-testdev,foo=1", "-device pc-testdev,foo=1: pc-testdev takes no properties")]
    public void UnsupportedDevice_IsRejectedWithAClearError(string device, string message)
    {
        var (code, stdout, stderr) = Run("pc-devices", "-device", device);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Equal("", stdout);
        Assert.Equal($"actorvm: {message}{Environment.NewLine}", stderr);
    }

    [Fact]
    public void UnknownCpuModelOrFeature_IsRejected()
    {
        Assert.Equal("actorvm: unknown CPU model 'pentium' (models: max, qemu64)" + Environment.NewLine, Run("pc-devices", "-cpu", "pentium").Stderr);
        Assert.StartsWith("actorvm: unknown CPU feature 'avx512f' in --cpu max,+avx512f", Run("pc-devices", "-cpu", "max,+avx512f").Stderr);
    }

    [Theory]
    [InlineData("max", true, true)]
    [InlineData("qemu64", false, false)]
    [InlineData("qemu64,+x2apic,+tsc-deadline", true, true)]
    [InlineData("qemu64,x2apic=on", true, false)]
    [InlineData("max,-x2apic", false, true)]
    [InlineData("max,tsc-deadline=off", true, false)]
    public void CpuOption_MapsToTheModel(string spec, bool x2Apic, bool tscDeadline)
    {
        var model = CpuModelOption.Parse(spec, out var error);
        Assert.Null(error);
        Assert.Equal(x2Apic, model!.X2Apic);
        Assert.Equal(tscDeadline, model.TscDeadline);
    }

    [Fact]
    public void CpuOption_ReachesTheGuestsCpuid()
    {
        // Without TSC-deadline the guest says so; with the default max model it runs the checks.
        Assert.Contains("tsc-deadline not offered", Run("apic-smp", "-cpu", "qemu64").Stdout);
        Assert.Contains("tsc-deadline msr reads 0 after expiry ok", Run("apic-smp", "-cpu", "qemu64,+tsc-deadline").Stdout);
    }
}
