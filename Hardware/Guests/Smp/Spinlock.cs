using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests.Smp;

/// <summary>
/// spinlock: every CPU increments a shared counter <c>iterations</c> times inside a test-and-
/// test-and-set lock (XCHG, implicitly locked, SDM 8.1.2.1) with a plain load/increment/store,
/// and a second counter with LOCK INC. The BSP checks both equal vCPUs × iterations: a lost
/// update means the lock or the LOCK prefix is not atomic across vCPUs.
/// </summary>
public static class Spinlock
{
    private const uint Lock = SmpKernel.DataAddress, Counter = Lock + 4, Atomic = Lock + 8, Finished = Lock + 12;

    public static GuestProgram Program { get; } = new("spinlock", "LOCK-prefixed contention: a spinlock-protected counter and a LOCK INC counter, totals verified", _ => Build(new GuestBuildContext(1, GuestApicMode.X2Apic, 2_000_000_000, new Dictionary<string, string> { ["iterations"] = "10000" })))
    {
        Parameters = [new GuestParameter("iterations", "increments per vCPU", "10000", 1, 10_000_000)],
        BuildFor = Build,
    };

    public static byte[] Build(GuestBuildContext c)
    {
        var n = c.Vcpus;
        var iterations = c.Int("iterations");
        var k = new SmpKernel(n, c.Apic);
        var a = k.A;
        k.Boot(() => Main(k, iterations));
        k.Code.Print($"spinlock: {n} vCPUs, {iterations} increments each\n");
        Main(k, iterations);
        k.WaitAtLeast(Finished, (uint)n);
        a.xor(edi, edi);
        k.Code.Print("spinlock: counter 0x");
        a.mov(eax, __dword_ptr[(int)Counter]);
        k.Code.PrintHexEax();
        k.Code.Print(", atomic 0x");
        a.mov(eax, __dword_ptr[(int)Atomic]);
        k.Code.PrintHexEax();
        k.Code.Print("\n");
        k.ExpectEqual(__dword_ptr[(int)Counter], (uint)(n * iterations));
        k.ExpectEqual(__dword_ptr[(int)Atomic], (uint)(n * iterations));
        k.Verdict("spinlock");
        return k.Build(c.Format);
    }

    private static void Main(SmpKernel k, int iterations)
    {
        var a = k.A;
        var acquire = a.CreateLabel();
        var spin = a.CreateLabel();
        var got = a.CreateLabel();
        a.mov(esi, iterations);
        a.Label(ref acquire);
        a.mov(eax, 1);
        a.xchg(__dword_ptr[(int)Lock], eax);
        a.test(eax, eax);
        a.jz(got);
        a.Label(ref spin);
        a.pause();
        a.cmp(__dword_ptr[(int)Lock], 0);
        a.jne(spin);
        a.jmp(acquire);
        a.Label(ref got);
        a.mov(eax, __dword_ptr[(int)Counter]);
        a.inc(eax);
        a.mov(__dword_ptr[(int)Counter], eax);
        a.mov(__dword_ptr[(int)Lock], 0);
        a.@lock.inc(__dword_ptr[(int)Atomic]);
        a.dec(esi);
        a.jnz(acquire);
        a.@lock.inc(__dword_ptr[(int)Finished]);
    }
}
