using System.Globalization;
using ActorVm.Actors.Vm;
using ActorVm.Hardware.Guests.Smp;
using ActorVm.Host.Scenarios;
using Microsoft.Extensions.Configuration;

namespace ActorVm.Host.Configuration;

/// <summary>
/// Resolves each machine setting from its layers, highest first: command-line option, scenario
/// file, ACTORVM_-prefixed environment variable (e.g. ACTORVM_VCPUS), appsettings.json's
/// <c>ActorVm</c> section, built-in default. (QEMU users: like <c>-smp</c> on the command line
/// overriding a <c>-readconfig</c> file.) Every unusable value is reported, not only the first.
/// </summary>
public static class RunSettingsResolver
{
    public static readonly string[] Keys = ["Vcpus", "MemoryMiB", "Apic", "Timer", "ImmediateExit", "Dispatcher", "TscHz", "TimeoutSeconds", "MaxInstructions"];

    public static RunSettings Resolve(RunOptions options, Scenario? scenario, HostEnvironment environment, List<string> errors)
    {
        IConfiguration json;
        try
        {
            json = new ConfigurationBuilder().AddJsonFile(environment.AppSettingsPath, optional: true).Build().GetSection("ActorVm");
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or IOException)
        {
            errors.Add($"{environment.AppSettingsPath}: {e.Message}");
            json = new ConfigurationBuilder().Build();
        }

        var sources = new Dictionary<string, SettingSource>();
        var m = scenario?.Machine ?? new MachineSpec();
        var l = scenario?.Limits ?? new LimitsSpec();

        T Pick<T>(string key, T? option, T? fromScenario, Func<string, T?> parse, T fallback)
            where T : struct
        {
            if (option is { } o)
            {
                sources[key] = SettingSource.CommandLine;
                return o;
            }

            if (fromScenario is { } s)
            {
                sources[key] = SettingSource.Scenario;
                return s;
            }

            foreach (var (text, where, source) in new[]
            {
                (environment.Variables.FirstOrDefault(kv => string.Equals(kv.Key, HostEnvironment.Prefix + key, StringComparison.OrdinalIgnoreCase)).Value, HostEnvironment.Prefix + key.ToUpperInvariant(), SettingSource.Environment),
                (json[key], $"appsettings.json ActorVm:{key}", SettingSource.AppSettings),
            })
            {
                if (text is null)
                {
                    continue;
                }

                if (parse(text) is { } v)
                {
                    sources[key] = source;
                    return v;
                }

                errors.Add($"{where}: cannot use '{text}' for {key}");
                break;
            }

            sources[key] = SettingSource.Default;
            return fallback;
        }

        T? PickNullable<T>(string key, T? option, T? fromScenario, Func<string, T?> parse)
            where T : struct
        {
            var v = Pick(key, option, fromScenario, parse, default(T));
            return sources[key] == SettingSource.Default ? null : v;
        }

        var settings = new RunSettings
        {
            Name = scenario?.Name ?? options.Program ?? Path.GetFileName(options.Kernel) ?? "vm",
            Vcpus = Pick("Vcpus", options.Vcpus, m.Vcpus, ParseInt, 1),
            MemoryMiB = Pick("MemoryMiB", options.MemoryMiB, m.MemoryMiB is { } mm ? (ulong)mm : null, ParseULong, 128UL),
            Apic = Pick("Apic", Choice(options.Apic, ParseApic, "--apic", errors), m.Apic is { } a ? ParseApic(a) : null, ParseApic, GuestApicMode.X2Apic),
            Timer = Pick("Timer", Choice(options.Timer, ParseTimer, "--timer", errors), m.Timer is { } t ? ParseTimer(t) : null, ParseTimer, TimerBackend.Hv),
            ImmediateExit = Pick("ImmediateExit", Choice(options.ImmediateExit, ParseImmediateExit, "--immediate-exit", errors), m.ImmediateExit is { } ie ? ParseImmediateExit(ie) : null, ParseImmediateExit, ImmediateExitMethod.PreemptionTimer),
            Dispatcher = Pick("Dispatcher", Choice(options.Dispatcher, ParseDispatcher, "--dispatcher", errors), m.Dispatcher is { } d ? ParseDispatcher(d) : null, ParseDispatcher, VcpuDispatcher.Shared),
            TscHz = Pick("TscHz", null, m.TscHz is { } hz ? (ulong)hz : null, ParseULong, 2_000_000_000UL),
            TimeoutSeconds = PickNullable("TimeoutSeconds", options.TimeoutSeconds, l.WallSeconds, ParseDouble),
            MaxInstructions = PickNullable("MaxInstructions", options.MaxInstructions, l.GuestInstructions, ParseLong),
            Expect = scenario?.Expect ?? new Expectations(),
            Sources = sources,
        };

        var dir = scenario?.SourcePath is { } sp ? Path.GetDirectoryName(sp)! : Directory.GetCurrentDirectory();
        var kernel = options.Kernel ?? (options.Program is null && scenario?.Guest.Kernel is { } k ? Path.Combine(dir, k.Path) : null);
        var program = options.Program ?? (options.Kernel is null ? scenario?.Guest.Program?.Name : null);
        return settings with
        {
            Kernel = kernel,
            Program = program,
            ProgramArgs = options.Program is null && scenario?.Guest.Program?.Args is { } args ? args : new Dictionary<string, string>(),
            Append = options.Append ?? scenario?.Guest.Kernel?.Cmdline,
            Initrd = options.Initrd ?? (scenario?.Guest.Kernel?.Initrd is { } i ? Path.Combine(dir, i) : null),
        };
    }

    private static T? Choice<T>(string? text, Func<string, T?> parse, string option, List<string> errors)
        where T : struct
    {
        if (text is null)
        {
            return null;
        }

        var v = parse(text);
        if (v is null)
        {
            errors.Add($"{option}: unknown value '{text}'");
        }

        return v;
    }

    public static GuestApicMode? ParseApic(string s) => s.ToLowerInvariant() switch
    {
        "xapic" => GuestApicMode.XApic,
        "x2apic" => GuestApicMode.X2Apic,
        _ => null,
    };

    public static TimerBackend? ParseTimer(string s) => s.ToLowerInvariant() switch
    {
        "hv" => TimerBackend.Hv,
        "sw" => TimerBackend.Sw,
        _ => null,
    };

    public static ImmediateExitMethod? ParseImmediateExit(string s) => s.ToLowerInvariant() switch
    {
        "preemption-timer" => ImmediateExitMethod.PreemptionTimer,
        "self-ipi" => ImmediateExitMethod.SelfIpi,
        _ => null,
    };

    public static VcpuDispatcher? ParseDispatcher(string s) => s.ToLowerInvariant() switch
    {
        "shared" => VcpuDispatcher.Shared,
        "pinned" => VcpuDispatcher.Pinned,
        _ => null,
    };

    private static int? ParseInt(string s) => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static long? ParseLong(string s) => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static ulong? ParseULong(string s) => ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static double? ParseDouble(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;
}
