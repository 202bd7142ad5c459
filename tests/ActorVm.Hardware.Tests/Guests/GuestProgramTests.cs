using System.Runtime.CompilerServices;
using System.Text;
using ActorVm.Hardware.Boot;
using ActorVm.Hardware.Guests;
using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.Guests;

/// <summary>
/// Built-in guest programs booted through the real Multiboot loader and the synchronous runner,
/// checked against QEMU's serial output and exit status (Golden/, see its README).
/// </summary>
public class GuestProgramTests
{
    public static TheoryData<string, KernelFormat> ProgramsAndFormats()
    {
        var data = new TheoryData<string, KernelFormat>();
        foreach (var p in new[] { "hello", "longmode-selftest", "compute" })
        {
            foreach (var f in Enum.GetValues<KernelFormat>())
            {
                data.Add(p, f);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ProgramsAndFormats))]
    public void MatchesQemuGolden(string name, KernelFormat format)
    {
        var (serial, result) = Boot(GuestPrograms.Find(name)!.Build(format));
        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        Assert.Equal(Golden(name + ".serial"), serial);
        Assert.Equal(int.Parse(Golden(name + ".status").Trim(), System.Globalization.CultureInfo.InvariantCulture), result.DebugExitStatus);
    }

    [Fact]
    public void LongModeSelftest_ReportsEachException()
    {
        var (serial, result) = Boot(GuestPrograms.BuildLongModeSelftest());
        Assert.Contains("long mode entered\n", serial);
        Assert.Contains($"checksum 0x{GuestPrograms.SelftestChecksum():x8}\n", serial);
        Assert.Contains("exception 0x0000000e error 0x00000002 cr2 0x40000000\n#PF ok\n", serial);
        foreach (var e in new[] { "self-modifying code", "#DE", "#UD", "#PF", "#GP" })
        {
            Assert.Contains($"{e} ok\n", serial);
        }

        Assert.Equal(1, result.DebugExitStatus);
    }

    [Fact]
    public void Compute_RetiresAKnownNumberOfInstructions()
    {
        const int iterations = 50_000;
        var (serial, result) = Boot(GuestPrograms.BuildCompute(iterations));
        Assert.Contains($"checksum 0x{GuestPrograms.ComputeChecksum(iterations):x8}\n", serial);
        Assert.Equal(1, result.DebugExitStatus);
        Assert.InRange(result.InstructionsRetired, (long)iterations * GuestPrograms.ComputeInstructionsPerIteration,
            ((long)iterations * GuestPrograms.ComputeInstructionsPerIteration) + 2000);
    }

    [Fact]
    public void DebugExitStatus_IsValueShiftedLeftOrOne()
    {
        var k = new MultibootKernelBuilder();
        k.Code32.DebugExit(0x21);
        var (_, result) = Boot(k.Build());
        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
        Assert.Equal(0x43, result.DebugExitStatus);
    }

    [Fact]
    public void UnexpectedException_StopsWithItsStatus()
    {
        var k = new MultibootKernelBuilder();
        var c = k.EnterLongMode();
        k.InstallExceptionHandlers();
        c.A.ud2();
        var (serial, result) = Boot(k.Build());
        Assert.Contains("exception 0x00000006", serial);
        Assert.Contains("unexpected exception", serial);
        Assert.Equal(DebugExitStatus(MultibootKernelBuilder.UnexpectedExceptionExit), result.DebugExitStatus);
    }

    [Fact]
    public void PrintHex_PrintsEightDigits()
    {
        var k = new MultibootKernelBuilder();
        k.Code32.A.mov(edi, 0xDEADBEEF);
        k.Code32.PrintHex(edi);
        k.Code32.DebugExit(0);
        Assert.Equal("deadbeef", Boot(k.Build()).Serial);
    }

    [Fact]
    public void Multiboot_EntryState_IsVisibleToTheGuest()
    {
        // EAX = 0x2BADB002 and EBX = the info structure; print both.
        var k = new MultibootKernelBuilder();
        var a = k.Code32.A;
        a.mov(edi, eax);
        a.mov(ebp, ebx);
        k.Code32.PrintHex(edi);
        k.Code32.Print(" ");
        a.mov(eax, __dword_ptr[ebp]);
        k.Code32.PrintHexEax();
        k.Code32.DebugExit(0);
        var (serial, _) = Boot(k.Build());
        Assert.Equal($"2badb002 {MultibootLoader.InfoMemory | MultibootLoader.InfoCmdline | MultibootLoader.InfoMods | MultibootLoader.InfoMmap | MultibootLoader.InfoLoaderName:x8}", serial);
    }

    public static int DebugExitStatus(uint value) => (int)((value << 1) | 1);

    internal static (string Serial, RunResult Result) Boot(byte[] image, RunLimits? limits = null, Action<Machine>? inspect = null)
    {
        var output = new MemoryStream();
        using var m = Machine.CreatePc(new MachineConfig(1, 64), b => output.Write(b), new ManualTscClock());
        MultibootLoader.Load(m, image, "test-kernel");
        var result = new Runner().Run(m, limits ?? new RunLimits(MaxInstructions: 50_000_000));
        inspect?.Invoke(m);
        return (Encoding.ASCII.GetString(output.ToArray()), result);
    }

    private static string Golden(string file, [CallerFilePath] string source = "") =>
        File.ReadAllText(Path.Combine(Path.GetDirectoryName(source)!, "Golden", file));
}
