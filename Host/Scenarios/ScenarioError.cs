namespace ActorVm.Host.Scenarios;

/// <summary>One problem in a scenario file: where (file, JSON path or line:column) and what was expected.</summary>
public sealed record ScenarioError(string File, string Location, string Message)
{
    public override string ToString() => $"{File}: {Location}: {Message}";
}

/// <summary>A scenario that cannot be used, with every problem found (not only the first).</summary>
public sealed class ScenarioException(IReadOnlyList<ScenarioError> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    public IReadOnlyList<ScenarioError> Errors { get; } = errors;
}
