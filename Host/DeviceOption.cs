namespace ActorVm.Host;

/// <summary>
/// QEMU's <c>-device</c> for the test devices kvm-unit-tests command lines name. The machine
/// always has them (Machine.CreatePc), so an accepted <c>-device</c> only confirms that what
/// QEMU would add is there; anything else is rejected rather than silently ignored.
/// </summary>
public static class DeviceOption
{
    public const string Supported = "isa-debug-exit,iobase=0xf4,iosize=0x4; pc-testdev";

    /// <summary>Null when <paramref name="spec"/> names a device the machine has as described, else the error line.</summary>
    public static string? Check(string spec)
    {
        var parts = spec.Split(',');
        var props = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in parts.Skip(1))
        {
            var eq = p.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                return $"-device {spec}: property '{p}' is not name=value";
            }

            props[p[..eq]] = p[(eq + 1)..];
        }

        switch (parts[0])
        {
            case "pc-testdev" when props.Count == 0:
                return null;
            case "pc-testdev":
                return $"-device {spec}: pc-testdev takes no properties";
            case "isa-debug-exit":
                // QEMU's defaults are iobase=0x501,iosize=2; ActorVm's port is fixed at 0xF4 (4 ports).
                if (props.Keys.Any(k => k is not ("iobase" or "iosize")))
                {
                    return $"-device {spec}: isa-debug-exit takes iobase and iosize only";
                }

                if (!(props.TryGetValue("iobase", out var b) && ParseInt(b) == 0xF4 && (!props.TryGetValue("iosize", out var s) || ParseInt(s) == 4)))
                {
                    return $"-device {spec}: isa-debug-exit is only available at iobase=0xf4,iosize=0x4";
                }

                return null;
            default:
                return $"-device {parts[0]} is not supported (supported: {Supported})";
        }
    }

    private static long? ParseInt(string s)
    {
        var hex = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        return long.TryParse(hex ? s[2..] : s, hex ? System.Globalization.NumberStyles.HexNumber : System.Globalization.NumberStyles.Integer,
            System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : null;
    }
}
