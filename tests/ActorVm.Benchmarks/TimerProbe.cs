using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Benchmarks;

/// <summary>
/// Timer lateness, TSC deadline → first handler instruction, measured by the guest itself: it
/// arms IA32_TSC_DEADLINE (LVT timer in TSC-deadline mode) <see cref="DeltaTicks"/> ahead, then
/// spins or halts; the handler reads the TSC and adds (now − deadline) to a 64-bit sum. The host
/// reads the sum from guest memory after the run. Run on the hv backend (deadline checked in
/// the slice, preemption-timer exit, fastpath) and the sw backend (host timer thread → LAPIC
/// actor → kick). <c>actors timer [repeats]</c>.
/// </summary>
public static class TimerProbe
{
    private const int Timers = 200;
    private const uint DeltaTicks = 100_000; // 50 µs at the default 2 GHz TSC
    private const byte TimerVector = 0x42;
    private const ushort Deadline = 0x610;
    private const ushort Sum = 0x620;

    public static int Run(int repeats)
    {
        Measure(TimerBackend.Hv, halted: false); // warm-up
        // The four configurations alternate run after run, so the shared machine's load hits the
        // hv and sw backends alike: their medians compare side by side.
        var configs = (from backend in new[] { TimerBackend.Hv, TimerBackend.Sw }
                       from halted in new[] { false, true }
                       select (backend, halted)).ToList();
        var samples = configs.ToDictionary(c => c, _ => new List<double>());
        for (var r = 0; r < repeats; r++)
        {
            foreach (var c in configs)
            {
                samples[c].Add(Measure(c.backend, c.halted));
            }
        }

        foreach (var c in configs)
        {
            var us = samples[c].Order().ToList();
            Console.WriteLine($"timer-{c.backend.ToString().ToLowerInvariant()}-{(c.halted ? "halted" : "running")} mean lateness: median {us[us.Count / 2],8:0.0} µs  min {us[0],8:0.0}  max {us[^1],8:0.0}  ({repeats} runs of {Timers} deadlines {DeltaTicks / 2000.0:0} µs ahead, alternating)");
        }

        return 0;
    }

    private static double Measure(TimerBackend backend, bool halted)
    {
        using var machine = new Machine(new MachineConfig(1, 4));
        var result = VmRunner.RunAsync(machine, new VmOptions
        {
            Timer = backend,
            Timeout = TimeSpan.FromSeconds(30),
            Load = (m, c) => Load(m, c, halted),
        }).GetAwaiter().GetResult();
        if (result.Kind != VmExitKind.Shutdown || machine.Memory.Read32(ActorGuests.Counter) != Timers)
        {
            throw new InvalidOperationException($"timer probe {backend}: {result.Kind} {result.Detail}, {machine.Memory.Read32(ActorGuests.Counter)} timers");
        }

        var ticks = machine.Memory.Read64(Sum) / (double)Timers;
        return ticks / (machine.Config.TscHz / 1e6);
    }

    private static void Load(Machine m, IVmControl control, bool halted)
    {
        ActorGuests.AttachDebugExit(m, control);
        ActorGuests.Handler(m, TimerVector, 0x3000, a =>
        {
            a.rdtsc();
            a.sub(eax, __dword_ptr[Deadline]);
            a.sbb(edx, __dword_ptr[Deadline + 4]);
            a.add(__dword_ptr[Sum], eax);
            a.adc(__dword_ptr[Sum + 4], edx);
            a.inc(__dword_ptr[ActorGuests.Counter]);
            a.Eoi();
            a.iret();
        });
        ActorGuests.LoadReal(m, 0, a =>
        {
            a.EnableX2Apic(bsp: true);
            a.Wrmsr(0x832, 0x40000 | TimerVector); // LVT timer: TSC-deadline mode (SDM 11.5.4.1)
            a.xor(edi, edi);
            var next = a.CreateLabel();
            var done = a.CreateLabel();
            a.Label(ref next);
            a.cli();
            a.rdtsc();
            a.add(eax, DeltaTicks);
            a.adc(edx, 0);
            a.mov(__dword_ptr[Deadline], eax);
            a.mov(__dword_ptr[Deadline + 4], edx);
            a.mov(ecx, 0x6E0u);
            a.wrmsr();
            a.inc(edi);
            var wait = a.CreateLabel();
            var fired = a.CreateLabel();
            a.Label(ref wait);
            a.cmp(__dword_ptr[ActorGuests.Counter], edi);
            a.je(fired);
            if (halted)
            {
                a.sti();
                a.hlt(); // STI's shadow: no wake-up is lost between the check and HLT
                a.cli();
            }
            else
            {
                a.sti();
                a.pause();
                a.cli();
            }

            a.jmp(wait);
            a.Label(ref fired);
            a.cmp(edi, Timers);
            a.jb(next);
            a.Label(ref done);
            a.DebugExit();
        });
    }
}
