using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests.Smp;

/// <summary>
/// ipi-ring: a token goes round the CPUs as a fixed IPI (vector 0x40), CPU i to CPU i+1 mod n,
/// <c>rounds</c> times. Each CPU halts (STI; HLT) until its handler sets its flag, counts the
/// token and passes it on; the last hop broadcasts a wake-up (0x41) so everyone stops. The BSP
/// checks that every CPU got the token exactly <c>rounds</c> times.
/// </summary>
public static class IpiRing
{
    private const uint Hops = SmpKernel.DataAddress, Done = Hops + 4, Finished = Hops + 8, Flags = Hops + 0x100, Counts = Hops + 0x1000;
    private const byte TokenVector = 0x40, WakeVector = 0x41;

    public static GuestProgram Program { get; } = new("ipi-ring", "every vCPU passes a token (fixed IPI) to the next, `rounds` times round the ring; the guest checks the counts", _ => Build(new GuestBuildContext(1, GuestApicMode.X2Apic, 2_000_000_000, new Dictionary<string, string> { ["rounds"] = "100" })))
    {
        Parameters = [new GuestParameter("rounds", "times the token goes round", "100", 1, 1_000_000)],
        BuildFor = Build,
    };

    public static byte[] Build(GuestBuildContext c)
    {
        var n = c.Vcpus;
        var rounds = c.Int("rounds");
        var k = new SmpKernel(n, c.Apic);
        var a = k.A;
        k.Handler(TokenVector, x => x.mov(__dword_ptr[ebp * 4 + (int)Flags], 1));
        k.Handler(WakeVector, _ => { });
        k.Boot(() => Main(k, bsp: false, n, rounds));
        k.Code.Print($"ipi-ring: {n} vCPUs, {rounds} rounds\n");
        Main(k, bsp: true, n, rounds);
        k.WaitAtLeast(Finished, (uint)(n - 1));
        a.xor(edi, edi);
        for (var i = 0; i < n; i++)
        {
            k.ExpectEqual(__dword_ptr[(int)(Counts + (i * 4))], (uint)rounds);
        }

        k.Verdict("ipi-ring");
        return k.Build(c.Format);
    }

    private static void Main(SmpKernel k, bool bsp, int n, int rounds)
    {
        var a = k.A;
        if (bsp)
        {
            k.Apic.SendIpi((uint)(1 % n), ApicOps.Assert | TokenVector);
        }

        var loop = a.CreateLabel();
        var got = a.CreateLabel();
        var last = a.CreateLabel();
        var finished = a.CreateLabel();
        var send = a.CreateLabel();
        a.Label(ref loop);
        a.cli();
        a.cmp(__dword_ptr[(int)Done], 0);
        a.jne(finished);
        a.cmp(__dword_ptr[ebp * 4 + (int)Flags], 0);
        a.jne(got);
        a.sti(); // STI's shadow covers HLT: the IPI cannot slip in between the check and the halt
        a.hlt();
        a.jmp(loop);

        a.Label(ref got);
        a.mov(__dword_ptr[ebp * 4 + (int)Flags], 0);
        a.inc(__dword_ptr[ebp * 4 + (int)Counts]);
        a.mov(eax, 1);
        a.@lock.xadd(__dword_ptr[(int)Hops], eax);
        a.inc(eax);
        a.cmp(eax, (uint)(rounds * n));
        a.jae(last);
        a.lea(edx, __[ebp + 1]);
        a.cmp(edx, n);
        a.jb(send);
        a.xor(edx, edx);
        a.Label(ref send);
        a.mov(eax, ApicOps.Assert | TokenVector);
        k.Apic.SendIpi();
        a.jmp(loop);

        a.Label(ref last);
        a.mov(__dword_ptr[(int)Done], 1);
        if (n > 1)
        {
            k.Apic.SendIpi(0, ApicOps.ShorthandAllButSelf | ApicOps.Assert | WakeVector);
        }

        a.Label(ref finished);
        a.sti();
        if (!bsp)
        {
            a.@lock.inc(__dword_ptr[(int)Finished]);
        }
    }
}
