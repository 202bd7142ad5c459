using System.Diagnostics;
using ActorVm.Hardware;
using ActorVm.Hardware.Boot;

namespace ActorVm.Benchmarks;

/// <summary>
/// A quick MIPS probe without BenchmarkDotNet (for profiling runs and for bench/compare.sh):
/// <c>mips &lt;loop&gt; &lt;iterations&gt; [repeats]</c> boots the loop on the synchronous runner
/// and prints one line per run: loop, instructions, wall seconds, process CPU seconds, MIPS by
/// CPU time. Boot and decoding are included; compare.sh subtracts two iteration counts.
/// </summary>
public static class QuickMips
{
    public static int Run(string[] args)
    {
        if (args.Length < 3 || !int.TryParse(args[2], out var iterations) || iterations <= 0)
        {
            Console.Error.WriteLine("usage: mips <integer|memory|branchy|callret> <iterations> [repeats]");
            return 2;
        }

        var guest = BenchGuests.Find(args[1]);
        var repeats = args.Length > 3 ? int.Parse(args[3]) : 1;
        var image = guest.Build(iterations);
        for (var r = 0; r < repeats; r++)
        {
            using var machine = Machine.CreatePc(new MachineConfig(1, 64), _ => { });
            MultibootLoader.Load(machine, image, guest.Name);
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            var wall = Stopwatch.StartNew();
            var result = new Runner().Run(machine, new RunLimits());
            wall.Stop();
            var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
            if (result.DebugExitStatus != 1)
            {
                Console.Error.WriteLine($"guest failed: {result.Outcome} {result.Detail}");
                return 1;
            }

            Console.WriteLine($"{guest.Name} {result.InstructionsRetired} {wall.Elapsed.TotalSeconds:0.0000} {cpu:0.0000} {result.InstructionsRetired / cpu / 1e6:0.0}");
        }

        return 0;
    }
}
