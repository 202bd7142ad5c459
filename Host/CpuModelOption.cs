using ActorVm.Hardware.X86;

namespace ActorVm.Host;

/// <summary>
/// <c>--cpu MODEL[,+feature,-feature…]</c> as QEMU's <c>-cpu</c> spells it, mapped onto
/// <see cref="CpuModel"/>. Models: <c>max</c> (everything the interpreter implements: x2APIC,
/// TSC-deadline, MOVBE, 1 GiB pages, the KVM leaves) and <c>qemu64</c> (QEMU's default: no x2APIC,
/// no TSC-deadline, no MOVBE, no 1 GiB pages). Features can be switched either way, except that
/// nothing the interpreter lacks can be switched on (every CpuModel bit is already implemented).
/// </summary>
public static class CpuModelOption
{
    private static readonly Dictionary<string, Func<CpuModel, bool, CpuModel>> Features = new(StringComparer.Ordinal)
    {
        ["x2apic"] = (m, on) => m with { X2Apic = on },
        ["tsc-deadline"] = (m, on) => m with { TscDeadline = on },
        ["movbe"] = (m, on) => m with { Movbe = on },
        ["pdpe1gb"] = (m, on) => m with { Has1GPages = on },
        ["hypervisor"] = (m, on) => m with { Hypervisor = on },
        ["kvm-pv-ipi"] = (m, on) => m with { PvSendIpi = on },
    };

    public static IEnumerable<string> FeatureNames => Features.Keys;

    /// <summary>Parses <paramref name="spec"/>; on failure returns null and a one-line <paramref name="error"/>.</summary>
    public static CpuModel? Parse(string spec, out string? error)
    {
        error = null;
        var parts = spec.Split(',');
        CpuModel? model = parts[0] switch
        {
            "max" or "host" => CpuModel.Default,
            "qemu64" => CpuModel.Default with { X2Apic = false, TscDeadline = false, Movbe = false, Has1GPages = false },
            _ => null,
        };
        if (model is null)
        {
            error = $"unknown CPU model '{parts[0]}' (models: max, qemu64)";
            return null;
        }

        foreach (var part in parts.Skip(1))
        {
            // QEMU accepts +f, -f, f=on and f=off.
            var (name, on) = part switch
            {
                ['+', .. var f] => (f, true),
                ['-', .. var f] => (f, false),
                _ when part.EndsWith("=on", StringComparison.Ordinal) => (part[..^3], true),
                _ when part.EndsWith("=off", StringComparison.Ordinal) => (part[..^4], false),
                _ => (part, true),
            };
            if (!Features.TryGetValue(name, out var apply))
            {
                error = $"unknown CPU feature '{name}' in --cpu {spec} (features: {string.Join(", ", Features.Keys)})";
                return null;
            }

            model = apply(model, on);
        }

        return model;
    }
}
