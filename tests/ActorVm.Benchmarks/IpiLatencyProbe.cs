using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// IPI latency, measured by the guest per IPI: vCPU 0 starts vCPU 1 (INIT/SIPI), waits until
/// it is ready, then N times: RDTSC, a fixed IPI to vCPU 1 (x2APIC ICR), spin until vCPU 1's
/// handler has incremented the counter, RDTSC, store the difference. vCPU 1 spins (PAUSE loop)
/// or halts with IF=1. So each sample is ICR write → handler → seen by the sender (an upper
/// bound of the one-way latency); the host reads the samples from guest memory and reports the
/// median (robust to the shared machine's hiccups) with the per-run medians' min-max.
/// <c>actors ipi-running|ipi-halted [rounds]</c>; ACTORVM_SLICE=n sets VmOptions.SliceInstructions
/// (the halted case's slow mode scales with it: see docs/PERFORMANCE.md).
/// </summary>
public static class IpiLatencyProbe
{
    private const int Samples = 2_000;
    private const ushort SampleSegment = 0x1000; // samples at 0x10000, 4 bytes each

    public static int Run(bool halted, int rounds)
    {
        Measure(halted); // warm-up
        var all = new List<double>();
        var medians = new List<double>();
        for (var r = 0; r < rounds; r++)
        {
            var us = Measure(halted);
            all.AddRange(us);
            us.Sort();
            medians.Add(us[us.Count / 2]);
        }

        all.Sort();
        medians.Sort();
        var name = halted ? "ipi-halted" : "ipi-running";
        Console.WriteLine($"{name,-16} median {all[all.Count / 2] * 1000,9:0} ns  min {medians[0] * 1000,9:0}  max {medians[^1] * 1000,9:0}  ({rounds} runs of {Samples} IPIs; min/max of the runs' medians; p90 {all[all.Count * 9 / 10] * 1000:0} ns) ns from ICR write on vCPU 0 to vCPU 1's handler ({(halted ? "halted" : "spinning")} with IF=1) seen by vCPU 0");
        return 0;
    }

    /// <summary>One run: the per-IPI latencies in µs.</summary>
    private static List<double> Measure(bool halted)
    {
        using var machine = new Machine(new MachineConfig(2, 4));
        var result = VmRunner.RunAsync(machine, new VmOptions
        {
            Vcpus = 2,
            MemoryMiB = 4,
            Timeout = TimeSpan.FromSeconds(120),
            SliceInstructions = long.TryParse(Environment.GetEnvironmentVariable("ACTORVM_SLICE"), out var slice) ? slice : new VmOptions().SliceInstructions,
            Load = (m, c) => Load(m, c, halted),
        }).GetAwaiter().GetResult();
        if (result.Kind != VmExitKind.Shutdown)
        {
            throw new InvalidOperationException($"ipi probe: {result.Kind} {result.Detail}");
        }

        var perUs = machine.Config.TscHz / 1e6;
        return Enumerable.Range(0, Samples).Select(i => machine.Memory.Read32((ulong)SampleSegment * 16 + (ulong)i * 4) / perUs).ToList();
    }

    private static void Load(Machine m, IVmControl control, bool halted)
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
            a.mov(ax, SampleSegment);
            a.mov(es, ax);
            a.xor(di, di);
            a.Repeat(Samples, () =>
            {
                a.mov(esi, __dword_ptr[ActorGuests.Counter]);
                a.rdtsc();
                a.mov(ebx, eax);
                a.Wrmsr(0x830, (1UL << 32) | 0x4000 | ActorGuests.IpiVector);
                var wait = a.CreateLabel();
                a.Label(ref wait);
                a.pause();
                a.cmp(__dword_ptr[ActorGuests.Counter], esi);
                a.je(wait);
                a.rdtsc();
                a.sub(eax, ebx);
                a.mov(__dword_ptr.es[di], eax);
                a.add(di, 4);
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
}
