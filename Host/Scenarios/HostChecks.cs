using ActorVm.Hardware.Guests;
using ActorVm.Host.Verdict;

namespace ActorVm.Host.Scenarios;

/// <summary>
/// Checks of a scenario that need the host's knowledge (the loader's schema and semantic checks
/// come first): the program's arguments and vCPU range, memory for SMP programs, statistic names
/// in <c>expect.stats</c>.
/// </summary>
public static class HostChecks
{
    public static IEnumerable<ScenarioError> Check(string file, Scenario s)
    {
        if (s.Guest.Program is { } p && GuestPrograms.Find(p.Name) is { } program)
        {
            foreach (var (argument, message) in program.Check(p.Args, s.Machine.Vcpus ?? 1))
            {
                yield return new ScenarioError(file, argument == "" ? "$.machine.vcpus" : $"$.guest.program.args.{argument}", message);
            }

            if (program.BuildFor is not null && s.Machine.MemoryMiB is < Hardware.Guests.Smp.SmpKernel.MinMemoryMiB)
            {
                yield return new ScenarioError(file, "$.machine.memoryMiB", $"program '{p.Name}' needs at least {Hardware.Guests.Smp.SmpKernel.MinMemoryMiB} MiB; found {s.Machine.MemoryMiB}");
            }
        }

        foreach (var path in s.Expect.Stats?.Keys ?? [])
        {
            if (StatisticsTree.CheckPath(path) is { } problem)
            {
                yield return new ScenarioError(file, $"$.expect.stats[\"{path}\"]", problem);
            }
        }
    }
}
