using ActorVm.Hardware.Guests.Smp;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

/// <summary>A built-in guest: a name the host and scenarios use, and how to build its kernel image.</summary>
/// <param name="Build">Builds it with default arguments for one vCPU (the <c>guest</c> command, QEMU).</param>
public sealed record GuestProgram(string Name, string Description, Func<KernelFormat, byte[]> Build)
{
    public IReadOnlyList<GuestParameter> Parameters { get; init; } = [];

    /// <summary>Fewest vCPUs the program needs (e.g. halt-wake needs someone to wake the BSP).</summary>
    public int MinVcpus { get; init; } = 1;

    /// <summary>Most vCPUs it can use (e.g. ipi-storm gives each sender its own vector).</summary>
    public int MaxVcpus { get; init; } = 4096;

    /// <summary>Builds it for a machine and arguments; null: <see cref="Build"/> ignores both.</summary>
    public Func<GuestBuildContext, byte[]>? BuildFor { get; init; }

    /// <summary>Every problem with the arguments for <paramref name="vcpus"/> CPUs, as (argument or "", message).</summary>
    public IEnumerable<(string Argument, string Message)> Check(IReadOnlyDictionary<string, string>? args, int vcpus)
    {
        if (vcpus < MinVcpus || vcpus > MaxVcpus)
        {
            yield return ("", $"program '{Name}' runs on {MinVcpus}..{MaxVcpus} vCPUs; the machine has {vcpus}");
        }

        foreach (var (name, value) in args ?? new Dictionary<string, string>())
        {
            if (Parameters.FirstOrDefault(p => p.Name == name) is not { } parameter)
            {
                var known = Parameters.Count == 0 ? "it takes no arguments" : $"expected one of: {string.Join(", ", Parameters.Select(p => p.Name))}";
                yield return (name, $"program '{Name}' has no argument '{name}' ({known})");
            }
            else if (parameter.Check(value) is { } problem)
            {
                yield return (name, problem);
            }
        }
    }

    /// <summary>Checks the arguments, fills in defaults and builds the kernel image.</summary>
    public byte[] BuildImage(int vcpus, GuestApicMode apic, ulong tscHz, IReadOnlyDictionary<string, string>? args, KernelFormat format = KernelFormat.AoutKludge)
    {
        var problems = Check(args, vcpus).ToList();
        if (problems.Count > 0)
        {
            throw new GuestArgumentException(string.Join("; ", problems.Select(p => p.Argument == "" ? p.Message : $"{p.Argument}: {p.Message}")));
        }

        var all = Parameters.ToDictionary(p => p.Name, p => args is not null && args.TryGetValue(p.Name, out var v) ? v : p.Default);
        return BuildFor is { } b ? b(new GuestBuildContext(vcpus, apic, tscHz, all, format)) : Build(format);
    }
}

/// <summary>
/// The built-in guest programs. Each checks its own results and reports through COM1 and the
/// debug-exit port (value V gives process status (V &lt;&lt; 1) | 1, so V = 0, "pass", is status 1).
/// </summary>
public static class GuestPrograms
{
    public const string HelloText = "Hello from ActorVm!\n";

    public static IReadOnlyList<GuestProgram> All { get; } =
    [
        new("hello", "prints a line on COM1 and exits through port 0xF4 (status 1)", BuildHello),
        new("longmode-selftest", "switches to long mode, checks an integer loop and self-modifying code, handles #DE, #UD, #PF and #GP (status 1 when all pass)", BuildLongModeSelftest),
        new("compute", $"a known-length 7-instruction integer loop on the BSP (for MIPS), checked by the guest", f => BuildCompute(ComputeDefaultIterations, f))
        {
            Parameters = [new("iterations", "loop iterations (7 instructions each)", ComputeDefaultIterations.ToString(System.Globalization.CultureInfo.InvariantCulture), 1, int.MaxValue)],
            BuildFor = c => BuildCompute(c.Int("iterations"), c.Format),
        },
        Smp.IpiRing.Program,
        Smp.IpiStorm.Program,
        Smp.SelfIpi.Program,
        Smp.TimerProgram.Program,
        Smp.HaltWake.Program,
        Smp.Spinlock.Program,
        .. PlatformGuests.All,
    ];

    public static GuestProgram? Find(string name) => All.FirstOrDefault(p => p.Name == name);

    public static byte[] BuildHello(KernelFormat format = KernelFormat.AoutKludge)
    {
        var k = new MultibootKernelBuilder();
        k.Code32.Print(HelloText);
        k.Code32.DebugExit(0);
        return k.Build(format);
    }

    // ---- longmode-selftest ----

    public const int SelftestLoopIterations = 100_000;

    /// <summary>The integer loop of the self-test, computed on the host: the guest compares against this.</summary>
    public static uint SelftestChecksum()
    {
        uint acc = 0;
        for (uint i = SelftestLoopIterations; i != 0; i--)
        {
            acc += i;
            acc ^= 0x9E3779B9;
            acc = (acc << 5) | (acc >> 27);
            acc *= 33;
        }

        return acc;
    }

    public static byte[] BuildLongModeSelftest(KernelFormat format = KernelFormat.AoutKludge)
    {
        var k = new MultibootKernelBuilder();
        k.Code32.Print("ActorVm self-test: 32-bit protected mode\n");
        var c = k.EnterLongMode();
        var a = c.A;
        k.InstallExceptionHandlers();
        a.xor(r13d, r13d); // failure count

        // Long mode active? EFER.LMA (bit 10).
        var lmaOk = a.CreateLabel();
        a.mov(ecx, 0xC0000080);
        a.rdmsr();
        a.test(eax, 0x400);
        a.jnz(lmaOk);
        a.inc(r13d);
        c.Print("EFER.LMA clear\n");
        a.Label(ref lmaOk);
        c.Print("long mode entered\n");

        // Integer loop with a checksum the guest verifies.
        a.mov(ecx, SelftestLoopIterations);
        a.xor(eax, eax);
        var loop = a.CreateLabel();
        a.Label(ref loop);
        a.add(eax, ecx);
        a.xor(eax, 0x9E3779B9u);
        a.rol(eax, 5);
        a.imul(eax, eax, 33);
        a.dec(ecx);
        a.jnz(loop);
        a.mov(r12d, eax);
        c.Print("checksum 0x");
        c.PrintHex(r12d);
        c.Print("\n");
        var sumOk = a.CreateLabel();
        a.cmp(r12d, SelftestChecksum());
        a.je(sumOk);
        a.inc(r13d);
        c.Print("checksum FAILED\n");
        a.Label(ref sumOk);

        // Self-modifying code: patch the immediate of an instruction a few bytes ahead, in the
        // block being executed, then run it; the new value must be seen (SDM 11.6).
        var smcTarget = a.CreateLabel();
        var smcOk = a.CreateLabel();
        a.lea(rdi, __[smcTarget]);
        a.mov(__dword_ptr[rdi + 1], 0x5A5A5A5A);
        a.Label(ref smcTarget);
        a.mov(eax, 0x11111111);
        a.cmp(eax, 0x5A5A5A5A);
        a.je(smcOk);
        a.inc(r13d);
        c.Print("self-modifying code FAILED\n");
        a.Label(ref smcOk);
        c.Print("self-modifying code ok\n");

        k.ExpectFault64("#DE", x =>
        {
            x.xor(ecx, ecx);
            x.mov(eax, 1);
            x.xor(edx, edx);
            x.div(ecx);
        }, vector: 0, errorCode: 0);
        k.ExpectFault64("#UD", x => x.ud2(), vector: 6, errorCode: 0);
        k.ExpectFault64("#PF", x =>
        {
            // 1 GiB is mapped; the next gigabyte is not present: a write there is #PF(W=1, P=0).
            x.mov(eax, 0x40000000);
            x.mov(__dword_ptr[rax], 1);
        }, vector: 14, errorCode: 2, cr2: 0x40000000);
        k.ExpectFault64("#GP", x =>
        {
            // A non-canonical address is #GP(0) (SDM 3.3.7.1).
            x.mov(rax, 0x8000_0000_0000_0000UL);
            x.mov(rax, __qword_ptr[rax]);
        }, vector: 13, errorCode: 0);

        c.Print("self-test failures: 0x");
        c.PrintHex(r13d);
        c.Print("\n");
        a.mov(eax, r13d);
        c.DebugExitEax();
        return k.Build(format);
    }

    // ---- compute ----

    public const int ComputeDefaultIterations = 1_000_000;

    /// <summary>Instructions retired per loop iteration of <see cref="BuildCompute"/>.</summary>
    public const int ComputeInstructionsPerIteration = 7;

    public const uint ComputeBuffer = 0x200000;

    /// <summary>The compute loop's result, computed on the host.</summary>
    public static uint ComputeChecksum(int iterations)
    {
        uint acc = 0, mem = 0;
        for (var i = iterations; i != 0; i--)
        {
            acc += mem;
            acc ^= 0x9E3779B9;
            acc <<= 1;
            mem = acc;
        }

        return acc;
    }

    /// <summary>
    /// The anchor loop itself (issue 7's "load, add, xor, shl, store, dec, jnz", 7 instructions per
    /// iteration) over <see cref="ComputeBuffer"/>, leaving the result in EAX; the benchmarks'
    /// Bochs boot sector runs the same emitter.
    /// </summary>
    public static void EmitAnchorLoop(Assembler a, int iterations)
    {
        a.mov(ecx, iterations);
        a.mov(esi, ComputeBuffer);
        a.mov(__dword_ptr[esi], 0);
        a.xor(eax, eax);
        var loop = a.CreateLabel();
        a.Label(ref loop);
        a.mov(edx, __dword_ptr[esi]);
        a.add(eax, edx);
        a.xor(eax, 0x9E3779B9u);
        a.shl(eax, 1);
        a.mov(__dword_ptr[esi], eax);
        a.dec(ecx);
        a.jnz(loop);
    }

    /// <summary>
    /// The 7-instruction integer loop of issue 2's speed target (load, add, xor, shl, store, dec,
    /// jnz), <paramref name="iterations"/> times in 32-bit protected mode; the guest compares the
    /// result with the host's and exits with 0 (status 1) when it matches, else 1 (status 3).
    /// </summary>
    public static byte[] BuildCompute(int iterations, KernelFormat format = KernelFormat.AoutKludge)
    {
        var k = new MultibootKernelBuilder();
        var c = k.Code32;
        var a = c.A;
        c.Print($"compute: {iterations} iterations\n");
        EmitAnchorLoop(a, iterations);
        a.mov(edi, eax);
        c.Print("checksum 0x");
        c.PrintHex(edi);
        c.Print("\n");
        var ok = a.CreateLabel();
        a.cmp(edi, ComputeChecksum(iterations));
        a.je(ok);
        c.Print("compute FAILED\n");
        c.DebugExit(1);
        a.Label(ref ok);
        c.DebugExit(0);
        return k.Build(format);
    }
}
