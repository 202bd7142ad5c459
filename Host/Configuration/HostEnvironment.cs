using System.Collections;

namespace ActorVm.Host.Configuration;

/// <summary>
/// Where the lower layers of the settings come from: appsettings.json and the process's
/// ACTORVM_-prefixed environment variables. Tests pass their own.
/// </summary>
public sealed record HostEnvironment(string AppSettingsPath, IReadOnlyDictionary<string, string> Variables)
{
    public const string Prefix = "ACTORVM_";

    public static HostEnvironment Current()
    {
        var variables = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            if (e.Key is string k && k.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) && e.Value is string v)
            {
                variables[k] = v;
            }
        }

        return new HostEnvironment(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), variables);
    }
}
