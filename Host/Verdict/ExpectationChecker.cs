using System.Globalization;
using ActorVm.Host.Scenarios;

namespace ActorVm.Host.Verdict;

/// <summary>Judges a finished run against a scenario's <c>expect</c> block, expectation by expectation.</summary>
public static class ExpectationChecker
{
    public static IReadOnlyList<ExpectationResult> Check(Expectations expect, int? guestExitStatus, string serial, Dictionary<string, object>? stats)
    {
        var results = new List<ExpectationResult>();
        if (expect.ExitStatus is { } status)
        {
            results.Add(new ExpectationResult($"exit status {status}", guestExitStatus == status,
                guestExitStatus is { } g ? $"{g}" : "the guest did not use debug-exit"));
        }

        var lines = serial.Replace("\r", "", StringComparison.Ordinal).Split('\n');
        foreach (var text in expect.Serial?.Contains ?? [])
        {
            var found = lines.Any(l => l.Contains(text, StringComparison.Ordinal));
            results.Add(new ExpectationResult($"serial contains \"{text}\"", found, found ? "found" : "not found"));
        }

        if (expect.Serial?.InOrder is { Count: > 0 } inOrder)
        {
            var at = 0;
            string? missing = null;
            foreach (var text in inOrder)
            {
                var next = Array.FindIndex(lines, at, l => l.Contains(text, StringComparison.Ordinal));
                if (next < 0)
                {
                    missing = text;
                    break;
                }

                at = next + 1;
            }

            results.Add(new ExpectationResult($"serial has in order: {string.Join(" → ", inOrder.Select(t => $"\"{t}\""))}", missing is null,
                missing is null ? "found in order" : $"\"{missing}\" not found after the previous lines"));
        }

        foreach (var text in expect.Serial?.NotContains ?? [])
        {
            var found = lines.Any(l => l.Contains(text, StringComparison.Ordinal));
            results.Add(new ExpectationResult($"serial does not contain \"{text}\"", !found, found ? "found" : "absent"));
        }

        foreach (var (path, bounds) in expect.Stats ?? new Dictionary<string, IReadOnlyDictionary<string, double>>())
        {
            var value = stats is null ? null : StatisticsTree.Lookup(stats, path);
            foreach (var (op, bound) in bounds)
            {
                var met = value is { } v && op switch
                {
                    "==" => v == bound,
                    "!=" => v != bound,
                    "<" => v < bound,
                    "<=" => v <= bound,
                    ">" => v > bound,
                    ">=" => v >= bound,
                    _ => false,
                };
                results.Add(new ExpectationResult(string.Create(CultureInfo.InvariantCulture, $"{path} {op} {bound}"), met,
                    value is { } x ? x.ToString("0.###", CultureInfo.InvariantCulture) : stats is null ? "no statistics" : "no such statistic"));
            }
        }

        return results;
    }
}
