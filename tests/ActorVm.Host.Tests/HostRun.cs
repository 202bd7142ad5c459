using System.Text;
using ActorVm.Host.Configuration;

namespace ActorVm.Host.Tests;

/// <summary>Runs the host in-process with captured streams and a controlled environment.</summary>
public static class HostRun
{
    /// <summary>An environment with no ACTORVM_ variables and the given (or no) appsettings.json.</summary>
    public static HostEnvironment Isolated(string? appSettings = null, Dictionary<string, string>? variables = null) =>
        new(appSettings ?? Path.Combine(Path.GetTempPath(), "actorvm-no-appsettings.json"), variables ?? new Dictionary<string, string>());

    public static (int Code, byte[] Serial, string Stdout, string Stderr) Run(string[] args, HostEnvironment? environment = null, CancellationToken cancellationToken = default)
    {
        var serial = new MemoryStream();
        var text = new StringWriter();
        var error = new StringWriter();
        var code = HostApp.Run(args, serial, text, error, cancellationToken, environment: environment ?? Isolated());
        return (code, serial.ToArray(), text.ToString(), error.ToString());
    }

    public static string ConfigsDirectory =>
        ActorVm.Host.Scenarios.ScenarioCatalog.FindConfigsDirectory() ?? throw new InvalidOperationException("configs/ not found above " + AppContext.BaseDirectory);

    public static string Ascii(byte[] bytes) => Encoding.ASCII.GetString(bytes);
}
