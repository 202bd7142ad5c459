using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests.Smp;

/// <summary>
/// halt-wake: the BSP halts (STI; HLT) <c>rounds</c> times and is woken each time by a fixed IPI
/// (vector 0x42) from the AP whose turn it is (round-robin); it checks that every halt ended
/// with exactly one wake-up. Exercises kvm_vcpu_block / kvm_vcpu_kick from another vCPU.
/// </summary>
public static class HaltWake
{
    private const uint Wakes = SmpKernel.DataAddress, Turn = Wakes + 4, Done = Wakes + 8, Finished = Wakes + 12;
    private const byte Vector = 0x42;

    public static GuestProgram Program { get; } = new("halt-wake", "the BSP halts `rounds` times, each time woken by an IPI from the next AP; wake-ups counted by the guest", _ => Build(new GuestBuildContext(2, GuestApicMode.X2Apic, 2_000_000_000, new Dictionary<string, string> { ["rounds"] = "100" })))
    {
        Parameters = [new GuestParameter("rounds", "halts of the BSP", "100", 1, 1_000_000)],
        MinVcpus = 2,
        BuildFor = Build,
    };

    public static byte[] Build(GuestBuildContext c)
    {
        var n = c.Vcpus;
        var rounds = c.Int("rounds");
        var k = new SmpKernel(n, c.Apic);
        var a = k.A;
        k.Handler(Vector, x => x.inc(__dword_ptr[(int)Wakes]));
        k.Boot(() => ApMain(k));
        k.Code.Print($"halt-wake: {rounds} halts of the BSP, woken by {n - 1} AP(s)\n");

        var loop = a.CreateLabel();
        var wait = a.CreateLabel();
        var woke = a.CreateLabel();
        a.xor(esi, esi);
        a.Label(ref loop);
        a.mov(eax, esi);
        a.xor(edx, edx);
        a.mov(ecx, n - 1);
        a.div(ecx);
        a.inc(edx);
        a.mov(__dword_ptr[(int)Turn], edx); // AP 1 + i mod (n-1) wakes us
        a.inc(esi);
        a.Label(ref wait);
        a.cli();
        a.cmp(__dword_ptr[(int)Wakes], esi);
        a.jae(woke);
        a.sti();
        a.hlt();
        a.jmp(wait);
        a.Label(ref woke);
        a.cmp(esi, rounds);
        a.jb(loop);

        a.mov(__dword_ptr[(int)Done], 1);
        a.sti();
        k.WaitAtLeast(Finished, (uint)(n - 1));
        a.xor(edi, edi);
        k.ExpectEqual(__dword_ptr[(int)Wakes], (uint)rounds);
        k.Verdict("halt-wake");
        return k.Build(c.Format);
    }

    private static void ApMain(SmpKernel k)
    {
        var a = k.A;
        var loop = a.CreateLabel();
        var go = a.CreateLabel();
        var finished = a.CreateLabel();
        a.Label(ref loop);
        a.cmp(__dword_ptr[(int)Done], 0);
        a.jne(finished);
        a.cmp(__dword_ptr[(int)Turn], ebp);
        a.je(go);
        a.pause();
        a.jmp(loop);
        a.Label(ref go);
        a.mov(__dword_ptr[(int)Turn], 0);
        k.Apic.SendIpi(0, ApicOps.Assert | Vector);
        a.jmp(loop);
        a.Label(ref finished);
        a.@lock.inc(__dword_ptr[(int)Finished]);
    }
}
