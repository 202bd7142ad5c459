namespace ActorVm.Host.Verdict;

/// <summary>One expectation of a scenario and whether the run met it.</summary>
public sealed record ExpectationResult(string Expectation, bool Met, string Actual);
