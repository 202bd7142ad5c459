using System.Diagnostics;
using System.Text;
using ActorVm.Hardware.Guests;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Host.Tests;

/// <summary>The host as a user sees it: options, stdout = serial bytes only, exit statuses.</summary>
public sealed class HostEndToEndTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("actorvm-host-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Stdout, string Stderr) InProcess(params string[] args)
    {
        var serial = new MemoryStream();
        var text = new StringWriter();
        var error = new StringWriter();
        var code = HostApp.Run(args, serial, text, error);
        return (code, Encoding.ASCII.GetString(serial.ToArray()) + text, error.ToString());
    }

    /// <summary>Runs the built host as a separate process, as a user would.</summary>
    private static (int Code, byte[] Stdout, string Stderr) AsProcess(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "actorvm.dll");
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = new MemoryStream();
        var copy = p.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "host did not finish");
        copy.Wait();
        return (p.ExitCode, stdout.ToArray(), stderr.Result);
    }

    private string Kernel(string name, byte[] image)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, image);
        return path;
    }

    [Fact]
    public void Process_Hello_StdoutHoldsOnlyTheSerialBytes()
    {
        var (code, stdout, stderr) = AsProcess("run", "--program", "hello");
        Assert.Equal(Encoding.ASCII.GetBytes(GuestPrograms.HelloText), stdout);
        Assert.Equal(1, code);
        Assert.Contains("booting hello", stderr);
        Assert.Contains("debug-exit status 1", stderr);
    }

    [Fact]
    public void Process_KernelFile_ExitStatusIsTheDebugExitStatus()
    {
        var path = Kernel("selftest.elf", GuestPrograms.BuildLongModeSelftest(KernelFormat.Elf32));
        var (code, stdout, _) = AsProcess("run", "--kernel", path, "-m", "64");
        Assert.Equal(1, code);
        Assert.EndsWith("self-test failures: 0x00000000\n", Encoding.ASCII.GetString(stdout));
    }

    [Fact]
    public void Process_MissingKernel_IsOneLineOnStderr_AndNothingOnStdout()
    {
        var (code, stdout, stderr) = AsProcess("run", "--kernel", "/nonexistent/k.elf");
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Empty(stdout);
        Assert.Equal("actorvm: kernel file '/nonexistent/k.elf' not found", stderr.Trim());
    }

    [Fact]
    public void Append_ReachesTheGuestCommandLine()
    {
        var k = new MultibootKernelBuilder();
        k.Code32.A.mov(esi, __dword_ptr[ebx + 16]);
        k.Code32.PrintStringAtEsi();
        k.Code32.DebugExit(2);
        var path = Kernel("cmdline.bin", k.Build());
        var (code, stdout, _) = InProcess("run", "--kernel", path, "--append", "NR_CPUS=4 verbose");
        Assert.Equal(5, code);
        Assert.Equal($"{path} NR_CPUS=4 verbose", stdout);
    }

    [Fact]
    public void Initrd_IsModuleZero()
    {
        var k = new MultibootKernelBuilder();
        k.Code32.A.mov(ebp, ebx); // puthex clobbers EBX
        k.Code32.A.mov(eax, __dword_ptr[ebp + 20]); // mods_count
        k.Code32.PrintHexEax();
        k.Code32.A.mov(esi, __dword_ptr[ebp + 24]);
        k.Code32.A.mov(esi, __dword_ptr[esi]); // mod_start: the initrd, zero-terminated below
        k.Code32.PrintStringAtEsi();
        k.Code32.DebugExit(0);
        var path = Kernel("mods.bin", k.Build());
        var initrd = Path.Combine(_dir, "env");
        File.WriteAllBytes(initrd, "NR_CPUS=2\n\0"u8.ToArray());
        var (code, stdout, _) = InProcess("run", "--kernel", path, "--initrd", initrd);
        Assert.Equal(1, code);
        Assert.Equal("00000001NR_CPUS=2\n", stdout);
    }

    [Fact]
    public void TripleFault_HasItsOwnStatus()
    {
        var k = new MultibootKernelBuilder();
        k.Code32.A.push(0);
        k.Code32.A.push(0);
        k.Code32.A.lidt(__[esp]);
        k.Code32.A.ud2();
        var (code, stdout, stderr) = InProcess("run", "--kernel", Kernel("tf.bin", k.Build()));
        Assert.Equal(ExitCodes.TripleFault, code);
        Assert.Empty(stdout);
        Assert.Contains("triple fault", stderr);
    }

    [Fact]
    public void InstructionLimit_IsTimeout()
    {
        var k = new MultibootKernelBuilder();
        var l = k.Code32.A.CreateLabel();
        k.Code32.A.Label(ref l);
        k.Code32.A.jmp(l);
        var path = Kernel("loop.bin", k.Build());
        Assert.Equal(ExitCodes.Timeout, InProcess("run", "--kernel", path, "--max-instructions", "5000").Code);
        Assert.Equal(ExitCodes.Timeout, InProcess("run", "--kernel", path, "--timeout", "0.2").Code);
    }

    [Fact]
    public void CleanHalt_IsZero()
    {
        var k = new MultibootKernelBuilder();
        k.Code32.Print("done\n");
        k.Code32.A.cli();
        k.Code32.A.hlt();
        var (code, stdout, _) = InProcess("run", "--kernel", Kernel("halt.bin", k.Build()));
        Assert.Equal(ExitCodes.Clean, code);
        Assert.Equal("done\n", stdout);
    }

    [Theory]
    [InlineData("actorvm: give a scenario file, or exactly one of --kernel FILE or --program NAME", "run")]
    [InlineData("actorvm: give a scenario file, or exactly one of --kernel FILE or --program NAME", "run", "--kernel", "x", "--program", "hello")]
    [InlineData("actorvm: unknown program 'nope' (built-in programs: hello, longmode-selftest, compute, ipi-ring, ipi-storm, self-ipi, timer, halt-wake, spinlock, pc-devices, pc-ioapic, pc-pic, pc-pic-lint0-masked, pc-reset, cpu-rules, longmode-4m, cr8-apic-off, apic-smp)", "run", "--program", "nope")]
    [InlineData("actorvm: memory size 1 MiB is out of range (2-3072 MiB)", "run", "--program", "hello", "-m", "1")]
    [InlineData("actorvm: 0 vCPUs is out of range (1-1024)", "run", "--program", "hello", "--smp", "0")]
    [InlineData("actorvm: 300 vCPUs cannot be addressed in xAPIC mode (at most 255); use --apic x2apic", "run", "--program", "hello", "--smp", "300", "--apic", "xapic")]
    [InlineData("actorvm: program 'ipi-ring' needs at least 8 MiB of memory; the machine has 4", "run", "--program", "ipi-ring", "-m", "4")]
    public void BadOptions_AreOneLineErrors(string expected, params string[] args)
    {
        var (code, stdout, stderr) = InProcess(args);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Empty(stdout);
        Assert.Equal(expected, stderr.Trim());
    }

    [Fact]
    public void UnknownOption_IsInvalidInput()
    {
        var (code, _, stderr) = InProcess("run", "--program", "hello", "--bogus");
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("--bogus", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public void NonNumericMemory_IsInvalidInput()
    {
        var (code, _, stderr) = InProcess("run", "--program", "hello", "-m", "lots");
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("lots", stderr);
    }

    [Fact]
    public void MemoryTooSmallForTheImage_NamesTheProblem()
    {
        var k = new MultibootKernelBuilder(bssBytes: 4 << 20);
        k.Code32.A.hlt();
        var path = Kernel("big.elf", k.Build(KernelFormat.Elf32));
        var (code, _, stderr) = InProcess("run", "--kernel", path, "-m", "2");
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Equal($"actorvm: {path}: ELF segment 0 at 0x100000-0x515000 lies outside guest RAM (0x0-0x200000, 2 MiB)", stderr.Trim());
    }

    [Fact]
    public void MalformedImage_NamesTheProblem()
    {
        var path = Kernel("junk.bin", new byte[4096]);
        var (code, _, stderr) = InProcess("run", "--kernel", path);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Equal($"actorvm: {path}: no Multiboot header (magic 0x1badb002) in the first 8192 bytes", stderr.Trim());
    }

    [Fact]
    public void Version_AndHelp()
    {
        var (code, version, _) = AsProcess("--version");
        Assert.Equal(0, code);
        Assert.StartsWith("0.1.0", Encoding.ASCII.GetString(version));
        string stdout;
        (code, stdout, _) = InProcess("run", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--kernel", stdout);
        Assert.Contains("--smp", stdout);
    }

    [Fact]
    public void GuestCommand_WritesABootableKernel()
    {
        var path = Path.Combine(_dir, "hello.elf");
        Assert.Equal(0, InProcess("guest", "hello", "--format", "elf32", "-o", path).Code);
        var (code, stdout, _) = InProcess("run", "--kernel", path);
        Assert.Equal(1, code);
        Assert.Equal(GuestPrograms.HelloText, stdout);
    }

    [Fact]
    public void Cancellation_StopsTheRun_With130()
    {
        var k = new MultibootKernelBuilder();
        var l = k.Code32.A.CreateLabel();
        k.Code32.A.Label(ref l);
        k.Code32.A.jmp(l);
        var path = Kernel("spin.bin", k.Build());
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var code = HostApp.Run(["run", "--kernel", path], new MemoryStream(), new StringWriter(), new StringWriter(), cts.Token);
        Assert.Equal(ExitCodes.Cancelled, code);
    }

    [Fact]
    public void Smp_RunsTheBsp_WithApsWaiting()
    {
        var (code, stdout, _) = InProcess("run", "--program", "hello", "--smp", "4");
        Assert.Equal(1, code);
        Assert.Equal(GuestPrograms.HelloText, stdout);
    }

    [Fact]
    public void RunnerSeam_IsReplaceable()
    {
        var fake = new FakeRunner();
        var code = HostApp.Run(["run", "--program", "hello"], new MemoryStream(), new StringWriter(), new StringWriter(), default, () => fake);
        Assert.Equal(ExitCodes.TripleFault, code);
        Assert.Equal(0x100020UL, fake.EntryRip);
    }

    private sealed class FakeRunner : ActorVm.Hardware.IVmRunner
    {
        public ulong EntryRip { get; private set; }

        public ActorVm.Hardware.RunResult Run(ActorVm.Hardware.Machine machine, ActorVm.Hardware.RunLimits limits, CancellationToken cancellationToken = default)
        {
            EntryRip = machine.Cpus[0].Rip;
            return new(ActorVm.Hardware.RunOutcome.TripleFault, null, 0, TimeSpan.Zero, "fake shutdown");
        }
    }

    [Fact]
    public void Programs_ListsTheBuiltInGuests()
    {
        var (code, stdout, _) = InProcess("programs");
        Assert.Equal(0, code);
        foreach (var g in GuestPrograms.All)
        {
            Assert.Contains(g.Name, stdout);
        }
    }
}
