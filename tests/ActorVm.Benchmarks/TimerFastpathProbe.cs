using System.Diagnostics;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.X86;

namespace ActorVm.Benchmarks;

/// <summary>
/// Fastpath re-entry cost of preemption-timer exits: handle_fastpath_preemption_timer's rule 1,
/// a soft-disabled timer's spurious expiry → REENTER_GUEST, over and over. The TSC jumps a whole
/// soft-disabled span at every read, so each entry programs the timer (one read) and the slice's
/// first deadline check (the next read) finds it expired before any guest instruction: every
/// entry is one exit 52 handled in the fastpath and re-entered, and nothing else runs. The VM
/// runs for a fixed time and is then stopped (VM_DEAD + kick, seen by the E10 re-check); cost per
/// exit = time / exits, as wall time of the run and as the process's CPU time (less inflated
/// when the shared machine is busy). <c>actors timer-fastpath [rounds]</c>.
/// </summary>
public static class TimerFastpathProbe
{
    private static readonly TimeSpan RunFor = TimeSpan.FromMilliseconds(500);

    /// <summary>Every read is a soft-disabled span (plus one tick) later than the previous one.</summary>
    private sealed class JumpingTscClock : ITscClock
    {
        private long _now;

        public ulong Frequency => 2_000_000_000;

        public ulong ReadTsc() => (ulong)Interlocked.Add(ref _now, (long)VcpuActor.SoftDisabledSpan + 1);
    }

    public static int Run(int rounds)
    {
        Measure(); // warm-up
        var wall = new List<double>();
        var cpu = new List<double>();
        long exits = 0;
        for (var r = 0; r < rounds; r++)
        {
            var m = Measure();
            wall.Add(m.Wall);
            cpu.Add(m.Cpu);
            exits = m.Exits;
        }

        wall.Sort();
        cpu.Sort();
        Console.WriteLine($"{"timer-fastpath",-16} median {wall[wall.Count / 2],9:0} ns  min {wall[0],9:0}  max {wall[^1],9:0}  ({rounds} rounds of {RunFor.TotalMilliseconds:0} ms, {exits} exits in the last) ns per soft-disabled preemption-timer exit handled in the fastpath and re-entered (wall)");
        Console.WriteLine($"{"timer-fastpath",-16} median {cpu[cpu.Count / 2],9:0} ns  min {cpu[0],9:0}  max {cpu[^1],9:0}  (the same runs, process CPU time per exit)");
        return 0;
    }

    private static (double Wall, double Cpu, long Exits) Measure()
    {
        var options = new VmOptions
        {
            MemoryMiB = 4,
            Timeout = RunFor,
            Clock = new JumpingTscClock(),
            Load = (m, c) => ActorGuests.LoadReal(m, 0, a =>
            {
                var spin = a.CreateLabel();
                a.Label(ref spin);
                a.jmp(spin); // never reached: every entry exits before its first instruction
            }),
        };
        var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var result = VmRunner.RunAsync(options).GetAwaiter().GetResult();
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpuBefore;
        var s = result.Statistics.Total;
        var exits = s.FastpathByHandler.GetValueOrDefault(nameof(FastpathHandler.PreemptionTimer))
            ?.GetValueOrDefault(nameof(FastpathResult.ReenterGuest)) ?? 0;
        if (result.Kind != VmExitKind.Timeout || exits < 1000 || s.InstructionsRetired != 0)
        {
            throw new InvalidOperationException($"timer-fastpath: {result.Kind} {result.Detail}, {exits} soft-disabled re-entries, {s.InstructionsRetired} instructions");
        }

        return (result.Elapsed.TotalNanoseconds / exits, cpu.TotalNanoseconds / exits, exits);
    }
}
