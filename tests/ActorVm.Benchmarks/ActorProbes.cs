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

        if (only is "ipi-running" or "ipi-halted")
        {
            return IpiLatencyProbe.Run(only == "ipi-halted", rounds);
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

        if (only is null)
        {
            IpiLatencyProbe.Run(halted: false, rounds);
            IpiLatencyProbe.Run(halted: true, rounds);
            TimerFastpathProbe.Run(rounds);
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
