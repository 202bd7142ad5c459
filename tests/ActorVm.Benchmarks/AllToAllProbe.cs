using System.Diagnostics;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Devices;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// All-to-all IPI throughput: every vCPU sends fixed IPIs (x2APIC ICR, physical) to each of its
/// M successors (APIC IDs id+1 … id+M mod N), R rounds, while taking the IPIs the others send it
/// (IF=1; the handler counts, EOIs and returns). M = N−1 up to 256 vCPUs (true all-to-all),
/// then fewer, so that every point sends about <see cref="Budget"/> IPIs and stays bounded:
/// N·M·R ≈ 64 Ki. vCPU 0 starts the APs (INIT/SIPI), waits until all checked in and halted,
/// writes marker 1, broadcasts "go" and sends its own share; every vCPU counts itself done and
/// IPIs vCPU 0, which writes marker 2 when all are done. Reported: the IPIs of the phase, its
/// wall time (marker 1 → 2), IPIs per second, and the share the target LAPICs accepted by then
/// (from the run's statistics; IRR coalescing still counts as accepted).
/// <c>actors alltoall [vcpus...]</c>.
/// </summary>
public static class AllToAllProbe
{
    public const int Budget = 65_536;
    private const byte BspVector = 0x40;
    private const byte IpiVector = 0x41;
    private const ushort Done = 0x608;
    private const ushort Received = 0x60C;

    /// <summary>Successors per vCPU and rounds for <paramref name="n"/> vCPUs.</summary>
    public static (int M, int R) Shape(int n)
    {
        var m = n <= 256 ? n - 1 : Math.Max(1, Budget / n);
        var r = m == 0 ? 0 : Math.Max(1, Budget / (n * m));
        return (m, r);
    }

    public static int Run(int[] counts)
    {
        Measure(4); // warm-up
        // wake/IPI and entries/IPI (whole run, set-up included: a few per vCPU) say how the IPIs
        // were taken: by a running target (an exit and re-entry) or by waking a halted one.
        // The exits behind the entries, per IPI: kicks (EXTERNAL_INTERRUPT), interrupt windows
        // (an IPI held off by IF=0 in a handler), HLT (the target had gone idle), MSR writes (the
        // ICR writes themselves, one per IPI sent).
        Console.WriteLine($"{"vcpus",6} {"M",5} {"R",6} {"IPIs",8} {"phase ms",10} {"IPIs/s",10} {"accepted",9} {"wake/IPI",9} {"entry/IPI",9} {"kick",6} {"window",6} {"hlt",6} {"wrmsr",6}  total s");
        foreach (var n in counts)
        {
            var (m, r) = Shape(n);
            var (phase, accepted, total, stats) = Measure(n);
            var ipis = (long)n * m * r;
            string PerIpi(long x) => ipis > 0 ? ((double)x / ipis).ToString("0.00") : "-";
            long Exits(string reason) => stats.ExitsByReason.GetValueOrDefault(reason);
            Console.WriteLine($"{n,6} {m,5} {r,6} {ipis,8} {phase.TotalMilliseconds,10:0.0} {(ipis > 0 ? (ipis / phase.TotalSeconds).ToString("0") : "-"),10} {(ipis > 0 ? $"{100.0 * accepted / ipis:0.0}%" : "-"),9} {PerIpi(stats.Wakeups),9} {PerIpi(stats.Entries),9} {PerIpi(Exits("EXTERNAL_INTERRUPT")),6} {PerIpi(Exits("INTERRUPT_WINDOW")),6} {PerIpi(Exits("HLT")),6} {PerIpi(Exits("MSR_WRITE")),6}  {total.TotalSeconds:0.00}");
        }

        return 0;
    }

    private static (TimeSpan Phase, long Accepted, TimeSpan Total, Actors.Stats.VcpuStatistics Stats) Measure(int n)
    {
        var marker = new MarkerPort();
        var start = Stopwatch.GetTimestamp();
        var result = VmRunner.RunAsync(new VmOptions
        {
            Vcpus = n,
            MemoryMiB = 4,
            Timeout = TimeSpan.FromSeconds(120),
            Load = (m, c) => Load(m, c, n, marker),
        }).GetAwaiter().GetResult();
        var total = Stopwatch.GetElapsedTime(start);
        if (result.Kind != VmExitKind.Shutdown || marker.Ticks[2] == 0)
        {
            throw new InvalidOperationException($"alltoall {n} vCPUs: {result.Kind} {result.Detail} after {total.TotalSeconds:0.0} s");
        }

        // Received counts IPIs of the phase and the set-up's (check-in, go, done): 3 per AP.
        var accepted = Math.Max(0, result.Statistics.Total.IpisReceived - 3L * (n - 1));
        return (Stopwatch.GetElapsedTime(marker.Ticks[1], marker.Ticks[2]), accepted, total, result.Statistics.Total);
    }

    private static void Load(Machine machine, IVmControl control, int n, MarkerPort marker)
    {
        var (m, r) = Shape(n);
        ActorGuests.AttachDebugExit(machine, control);
        machine.Io.Register(0x90, 1, marker);
        ActorGuests.Handler(machine, BspVector, 0x3000, a =>
        {
            SaveAndEoi(a);
            a.iret();
        });
        ActorGuests.Handler(machine, IpiVector, 0x3100, a =>
        {
            a.@lock.inc(__dword_ptr[Received]);
            SaveAndEoi(a);
            a.iret();
        });
        ActorGuests.LoadReal(machine, 0, a =>
        {
            a.EnableX2Apic(bsp: true);
            a.StartAps();
            a.WaitFor(ActorGuests.Counter, n - 1);
            a.mov(al, 1);
            a.@out(0x90, al);
            a.Wrmsr(0x830, 0xC4000 | IpiVector); // go: fixed, all excluding self
            a.xor(ebx, ebx); // own APIC ID
            SendShare(a, n, m, r);
            a.@lock.inc(__dword_ptr[Done]);
            a.WaitFor(Done, n);
            a.mov(al, 2);
            a.@out(0x90, al);
            a.DebugExit();
        });
        machine.Memory.WriteBytes(ActorGuests.ApCode, ActorGuests.Assemble16(0, a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.EnableX2Apic(bsp: false);
            a.mov(ecx, 0x802u); // x2APIC ID
            a.rdmsr();
            a.mov(ebx, eax);
            // Own 64-byte stack per APIC ID at 0x20000 + 64 * id (SS = 0x2000 + 4 * id, SP = 0x40).
            a.shl(ax, 2);
            a.add(ax, 0x2000);
            a.mov(ss, ax);
            a.mov(sp, 0x40);
            a.@lock.inc(__dword_ptr[ActorGuests.Counter]);
            a.Wrmsr(0x830, 0x4000 | BspVector);
            a.sti();
            a.hlt(); // until "go" (or the first IPI of a vCPU that already got it)
            SendShare(a, n, m, r);
            a.@lock.inc(__dword_ptr[Done]);
            a.Wrmsr(0x830, 0x4000 | BspVector);
            var idle = a.CreateLabel();
            a.Label(ref idle);
            a.hlt();
            a.jmp(idle);
        }));
    }

    /// <summary>R rounds over the M successors of APIC ID EBX: WRMSR 0x830 with EDX = (EBX + k) mod N.</summary>
    private static void SendShare(Iced.Intel.Assembler a, int n, int m, int r)
    {
        if (m == 0)
        {
            return;
        }

        var round = a.CreateLabel();
        var target = a.CreateLabel();
        var inRange = a.CreateLabel();
        a.mov(esi, (uint)r);
        a.Label(ref round);
        a.mov(edi, 1u);
        a.Label(ref target);
        a.mov(edx, ebx);
        a.add(edx, edi);
        a.cmp(edx, (uint)n);
        a.jb(inRange);
        a.sub(edx, (uint)n);
        a.Label(ref inRange);
        a.mov(ecx, 0x830u);
        a.mov(eax, 0x4000u | IpiVector);
        a.wrmsr(); // an IPI taken here (IF=1) finds its registers saved by the handler
        a.inc(edi);
        a.cmp(edi, (uint)m);
        a.jbe(target);
        a.dec(esi);
        a.jnz(round);
    }

    private static void SaveAndEoi(Iced.Intel.Assembler a)
    {
        a.push(eax);
        a.push(ecx);
        a.push(edx);
        a.Eoi();
        a.pop(edx);
        a.pop(ecx);
        a.pop(eax);
    }
}
