using System.Diagnostics;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// The actor-layer figures of the suite, measured on whole VMs run by <see cref="VmRunner"/>:
/// each probe's guest repeats one operation N times, at two counts, in alternating rounds;
/// the cost per operation is Δwall / ΔN, so VM start-up and shutdown cancel out. Each run's
/// statistics are checked (the operation really went through the path it is named for).
/// <c>actors [probe|all-probes] [rounds]</c>; probes: icr-fastpath, io-slowpath, ipi-running, ipi-halted,
/// self-ipi-timer, self-ipi-ipi, timer (TimerProbe), timer-fastpath (TimerFastpathProbe), scale (ScaleProbe),
/// alltoall (AllToAllProbe). Prints one line per probe: median, min and max ns per operation.
/// </summary>
public static class ActorProbes
{
    private sealed record Probe(string Name, string What, int N1, int N2, Func<int, VmOptions, VmOptions> Options, Func<VmResult, int, string?> Check);

    private static readonly Probe[] Probes =
    [
        new("icr-fastpath", "ns per x2APIC ICR write (WRMSR 0x830, fixed IPI to an absent APIC) handled in the fastpath and re-entered",
            100_000, 1_000_000, (n, o) => o with { Load = (m, c) => IcrLoop(m, c, n) },
            (r, n) => Count(r, s => s.FastpathByHandler.GetValueOrDefault("X2ApicIcr")?.GetValueOrDefault("ReenterGuest") ?? 0) >= n ? null : "ICR writes not in the fastpath"),
        new("io-slowpath", "ns per OUT exit round trip through the run-loop actor (slowpath, device, re-entry)",
            2_000, 20_000, (n, o) => o with { Load = (m, c) => OutLoop(m, c, n) },
            (r, n) => Count(r, s => s.SlowpathByReason.Where(kv => kv.Key.Contains("IO", StringComparison.OrdinalIgnoreCase)).Sum(kv => kv.Value)) >= n ? null : "OUTs not through the slowpath"),
        new("ipi-running", "ns from ICR write on vCPU 0 to vCPU 1's handler (spinning with IF=1) seen by vCPU 0",
            200, 2_000, (n, o) => o with { Vcpus = 2, Load = (m, c) => PingPong(m, c, n, halted: false) }, (r, n) => null),
        new("ipi-halted", "ns from ICR write on vCPU 0 to vCPU 1's handler (halted with IF=1) seen by vCPU 0",
            200, 2_000, (n, o) => o with { Vcpus = 2, Load = (m, c) => PingPong(m, c, n, halted: true) }, (r, n) => null),
        new("self-ipi-timer", "ns per self-IPI (ICR shorthand self) taken as an interrupt, forced exits by the preemption timer",
            500, 5_000, (n, o) => o with { ImmediateExit = ImmediateExitMethod.PreemptionTimer, Load = (m, c) => SelfIpiLoop(m, c, n) }, (r, n) => null),
        new("self-ipi-ipi", "ns per self-IPI (ICR shorthand self) taken as an interrupt, forced exits by a host self-IPI",
            500, 5_000, (n, o) => o with { ImmediateExit = ImmediateExitMethod.SelfIpi, Load = (m, c) => SelfIpiLoop(m, c, n) }, (r, n) => null),
    ];

    public static int Run(string[] args)
    {
        var only = args.Length > 1 && args[1] != "all-probes" ? args[1] : null;
        var rounds = args.Length > 2 ? int.Parse(args[2]) : 3;
        if (only == "timer")
        {
            return TimerProbe.Run(args.Length > 2 ? int.Parse(args[2]) : 3);
        }

        if (only == "timer-fastpath")
        {
            return TimerFastpathProbe.Run(rounds);
        }

        if (only == "alltoall")
        {
            var counts = args.Skip(2).Select(int.Parse).Where(x => x > 0).ToArray();
            return AllToAllProbe.Run(counts.Length == 0 ? [1, 4, 16, 64, 256, 1024, 4096] : counts);
        }

        if (only == "scale")
        {
            return Scale(args.Skip(2).Select(int.Parse).DefaultIfEmpty(0).Where(x => x > 0).ToArray());
        }

        foreach (var p in Probes.Where(p => only is null || p.Name == only))
        {
            var perOp = new List<double>();
            Time(p, p.N1); // warm-up: JIT and the first actor system
            for (var r = 0; r < rounds; r++)
            {
                var t1 = Time(p, p.N1);
                var t2 = Time(p, p.N2);
                perOp.Add((t2 - t1).TotalNanoseconds / (p.N2 - p.N1));
            }

            perOp.Sort();
            Console.WriteLine($"{p.Name,-16} median {perOp[perOp.Count / 2],9:0} ns  min {perOp[0],9:0}  max {perOp[^1],9:0}  ({rounds} rounds, N {p.N1}→{p.N2}) {p.What}");
        }

        return 0;
    }

    private static TimeSpan Time(Probe p, int n)
    {
        var options = p.Options(n, new VmOptions { MemoryMiB = 4, Timeout = TimeSpan.FromSeconds(60) });
        var sw = Stopwatch.StartNew();
        var result = VmRunner.RunAsync(options).GetAwaiter().GetResult();
        sw.Stop();
        if (result.Kind != VmExitKind.Shutdown)
        {
            throw new InvalidOperationException($"{p.Name} N={n}: {result.Kind} {result.Detail}");
        }

        if (p.Check(result, n) is { } problem)
        {
            throw new InvalidOperationException($"{p.Name} N={n}: {problem}");
        }

        return sw.Elapsed;
    }

    private static long Count(VmResult r, Func<Actors.Stats.VcpuStatistics, long> f) => f(r.Statistics.Total);

    private static void IcrLoop(Machine m, IVmControl control, int n)
    {
        ActorGuests.AttachDebugExit(m, control);
        ActorGuests.LoadReal(m, 0, a =>
        {
            a.EnableX2Apic(bsp: true);
            a.Repeat(n, () => a.Wrmsr(0x830, (0xFFUL << 32) | 0x4000 | ActorGuests.IpiVector));
            a.DebugExit();
        });
    }

    private static void OutLoop(Machine m, IVmControl control, int n)
    {
        ActorGuests.AttachDebugExit(m, control);
        m.Io.Register(0x80, 1, new ActorGuests.NullPort());
        ActorGuests.LoadReal(m, 0, a =>
        {
            a.Repeat(n, () => a.@out(0x80, al));
            a.DebugExit();
        });
    }

    /// <summary>
    /// vCPU 0 starts vCPU 1 (INIT/SIPI), waits until it is ready, then N times: send a fixed IPI
    /// and spin until vCPU 1's handler incremented the counter. vCPU 1 spins or halts with IF=1.
    /// </summary>
    private static void PingPong(Machine m, IVmControl control, int n, bool halted)
    {
        ActorGuests.AttachDebugExit(m, control);
        ActorGuests.Handler(m, ActorGuests.IpiVector, 0x3000, a =>
        {
            a.@lock.inc(__dword_ptr[ActorGuests.Counter]);
            a.Eoi();
            a.iret();
        });
        ActorGuests.LoadReal(m, 0, a =>
        {
            a.EnableX2Apic(bsp: true);
            a.Wrmsr(0x830, (1UL << 32) | 0x4500); // INIT → APIC 1
            a.Wrmsr(0x830, (1UL << 32) | 0x4602); // SIPI vector 2 → 0200:0000
            var ready = a.CreateLabel();
            a.Label(ref ready);
            a.cmp(__dword_ptr[ActorGuests.Counter2], 1);
            a.jne(ready);
            a.Repeat(n, () =>
            {
                a.mov(esi, __dword_ptr[ActorGuests.Counter]);
                a.Wrmsr(0x830, (1UL << 32) | 0x4000 | ActorGuests.IpiVector);
                var wait = a.CreateLabel();
                a.Label(ref wait);
                a.pause();
                a.cmp(__dword_ptr[ActorGuests.Counter], esi);
                a.je(wait);
            });
            a.DebugExit();
        });
        m.Memory.WriteBytes(ActorGuests.ApCode, ActorGuests.Assemble16(0, a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.mov(ss, ax);
            a.mov(sp, 0x6000);
            a.EnableX2Apic(bsp: false);
            a.sti();
            a.mov(__dword_ptr[ActorGuests.Counter2], 1);
            var idle = a.CreateLabel();
            a.Label(ref idle);
            if (halted)
            {
                a.hlt();
            }
            else
            {
                a.pause();
            }

            a.jmp(idle);
        }));
    }

    private static void SelfIpiLoop(Machine m, IVmControl control, int n)
    {
        ActorGuests.AttachDebugExit(m, control);
        ActorGuests.Handler(m, ActorGuests.IpiVector, 0x3000, a =>
        {
            a.inc(__dword_ptr[ActorGuests.Counter]);
            a.Eoi();
            a.iret();
        });
        ActorGuests.LoadReal(m, 0, a =>
        {
            a.EnableX2Apic(bsp: true);
            a.sti();
            a.Repeat(n, () =>
            {
                a.mov(esi, __dword_ptr[ActorGuests.Counter]);
                a.Wrmsr(0x830, (1UL << 18) | 0x4000 | ActorGuests.IpiVector); // shorthand self
                var wait = a.CreateLabel();
                a.Label(ref wait);
                a.cmp(__dword_ptr[ActorGuests.Counter], esi);
                a.je(wait);
            });
            a.DebugExit();
        });
    }

    private static int Scale(int[] counts) => ScaleProbe.Run(counts.Length == 0 ? [1, 4, 16, 64, 256, 1024, 4096] : counts);
}
