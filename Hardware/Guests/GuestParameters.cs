using System.Globalization;
using ActorVm.Hardware.Guests.Smp;

namespace ActorVm.Hardware.Guests;

/// <summary>A parameter of a built-in guest program: an integer in [Min, Max] or one of <see cref="Choices"/>.</summary>
public sealed record GuestParameter(string Name, string Description, string Default, long Min = 0, long Max = int.MaxValue, IReadOnlyList<string>? Choices = null)
{
    /// <summary>The problem with <paramref name="value"/>, or null.</summary>
    public string? Check(string value)
    {
        if (Choices is { } choices)
        {
            return choices.Contains(value) ? null : $"expected one of {string.Join(", ", choices.Select(c => $"\"{c}\""))}; found \"{value}\"";
        }

        return long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= Min && n <= Max
            ? null
            : $"expected an integer in {Min}..{Max}; found {value}";
    }
}

/// <summary>A guest program's arguments were not usable.</summary>
public sealed class GuestArgumentException(string message) : Exception(message);

/// <summary>What a built-in guest is built for: the machine it will run on and its arguments (defaults filled in).</summary>
public sealed record GuestBuildContext(int Vcpus, GuestApicMode Apic, ulong TscHz, IReadOnlyDictionary<string, string> Args, KernelFormat Format = KernelFormat.AoutKludge)
{
    public int Int(string name) => int.Parse(Args[name], NumberStyles.Integer, CultureInfo.InvariantCulture);

    public string Text(string name) => Args[name];

    /// <summary>TSC ticks per microsecond (at least 1).</summary>
    public uint TscPerMicrosecond => (uint)Math.Max(1UL, TscHz / 1_000_000);
}
