using System.Globalization;
using ActorVm.Actors.Stress;

namespace ActorVm.Host.Commands;

/// <summary>The final table of <c>actorvm stress</c>, one row per storm.</summary>
public static class StressTable
{
    public static void Write(TextWriter output, IReadOnlyList<StormReport> reports)
    {
        var ci = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(ci, $"{"storm",-20} {"vCPUs",6} {"events",12} {"events/s",11} {"guest irqs",11} {"violations",10} {"lost",6} {"dup",5} {"result",6}"));
        foreach (var r in reports)
        {
            output.WriteLine(string.Create(ci,
                $"{r.Storm,-20} {r.Vcpus,6} {r.Events,12:N0} {r.EventsPerSecond,11:N0} {r.GuestInterrupts,11:N0} {r.ViolationCount,10} {r.Lost,6} {r.Duplicates,5} {(r.Passed ? "ok" : "FAIL"),6}"));
        }
    }
}
