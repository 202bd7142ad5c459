using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests.Smp;

/// <summary>
/// ipi-storm: every CPU sends <c>count</c> fixed IPIs to every other CPU at once, sender s on
/// vector 0x40 + s, and each receiver counts per sender. A sender sends round r+1 to a CPU only
/// after that CPU's handler has counted round r, so IRR never holds a vector twice (a second IPI
/// on a vector already pending in IRR would merge, SDM 11.5.5, and the counts could not be
/// checked). The BSP checks received[d][s] = count for every d ≠ s and 0 for d = s.
/// </summary>
public static class IpiStorm
{
    /// <summary>Vectors 0x40 + sender up to 0xFD.</summary>
    public const int MaxVcpus = 0xFE - 0x40;

    private const uint Finished = SmpKernel.DataAddress, Received = SmpKernel.DataAddress + 0x10000;

    public static GuestProgram Program { get; } = new("ipi-storm", "all-to-all fixed IPIs, `count` per sender and receiver, per-sender counts verified in the guest", _ => Build(new GuestBuildContext(1, GuestApicMode.X2Apic, 2_000_000_000, new Dictionary<string, string> { ["count"] = "10" })))
    {
        Parameters = [new GuestParameter("count", "IPIs each CPU sends to each other CPU", "10", 1, 1_000_000)],
        MaxVcpus = MaxVcpus,
        BuildFor = Build,
    };

    public static byte[] Build(GuestBuildContext c)
    {
        var n = c.Vcpus;
        var count = c.Int("count");
        var k = new SmpKernel(n, c.Apic);
        var a = k.A;
        for (var s = 0; s < n; s++)
        {
            var sender = s;
            k.Handler((byte)(0x40 + s), x =>
            {
                x.mov(eax, ebp);
                x.shl(eax, 10); // row of this receiver: 256 senders × 4 bytes
                x.inc(__dword_ptr[eax + (int)(Received + (sender * 4))]);
            });
        }

        k.Boot(() =>
        {
            Main(k, n, count);
            k.IdleForever(); // IPIs from slower senders may still be on their way
        });
        k.Code.Print($"ipi-storm: {n} vCPUs, {count} IPIs per pair\n");
        Main(k, n, count);
        k.WaitAtLeast(Finished, (uint)n);
        // received[d][s] must be count for d ≠ s and 0 for d = s.
        a.xor(edi, edi);
        a.xor(ebx, ebx);
        var rows = a.CreateLabel();
        var columns = a.CreateLabel();
        var other = a.CreateLabel();
        var ok = a.CreateLabel();
        a.Label(ref rows);
        a.xor(ecx, ecx);
        a.Label(ref columns);
        a.mov(eax, ebx);
        a.shl(eax, 8);
        a.add(eax, ecx);
        a.mov(edx, count);
        a.cmp(ebx, ecx);
        a.jne(other);
        a.xor(edx, edx);
        a.Label(ref other);
        a.cmp(__dword_ptr[eax * 4 + (int)Received], edx);
        a.je(ok);
        a.inc(edi);
        a.Label(ref ok);
        a.inc(ecx);
        a.cmp(ecx, n);
        a.jb(columns);
        a.inc(ebx);
        a.cmp(ebx, n);
        a.jb(rows);
        k.Verdict("ipi-storm");
        return k.Build(c.Format);
    }

    private static void Main(SmpKernel k, int n, int count)
    {
        var a = k.A;
        a.sti();
        a.mov(esi, 1);
        var round = a.CreateLabel();
        a.Label(ref round);

        var send = a.CreateLabel();
        var sendNext = a.CreateLabel();
        a.xor(ebx, ebx);
        a.Label(ref send);
        a.cmp(ebx, ebp);
        a.je(sendNext);
        a.mov(edx, ebx);
        a.lea(eax, __[ebp + (int)(ApicOps.Assert | 0x40)]);
        k.Apic.SendIpi();
        a.Label(ref sendNext);
        a.inc(ebx);
        a.cmp(ebx, n);
        a.jb(send);

        var wait = a.CreateLabel();
        var spin = a.CreateLabel();
        var waitNext = a.CreateLabel();
        a.xor(ebx, ebx);
        a.Label(ref wait);
        a.cmp(ebx, ebp);
        a.je(waitNext);
        a.mov(eax, ebx);
        a.shl(eax, 10);
        a.Label(ref spin);
        a.cmp(__dword_ptr[eax + ebp * 4 + (int)Received], esi);
        a.jae(waitNext);
        a.pause();
        a.jmp(spin);
        a.Label(ref waitNext);
        a.inc(ebx);
        a.cmp(ebx, n);
        a.jb(wait);

        a.inc(esi);
        a.cmp(esi, count);
        a.jbe(round);
        a.@lock.inc(__dword_ptr[(int)Finished]);
    }
}
