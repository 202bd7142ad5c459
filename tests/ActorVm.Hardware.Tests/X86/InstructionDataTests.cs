using System.Globalization;
using ActorVm.Hardware.X86;
using Iced.Intel;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// Instruction semantics as data: every line of X86/Data/*.txt is one case,
/// <c>bits | hex bytes | asm (documentation) | inputs | expected</c>. The code runs at
/// <see cref="CpuHarness.CodeBase"/> in a page of HLTs, so execution stops at the HLT after it (or
/// at the branch target); exceptions land in <see cref="CpuHarness.InstallFaultStubs"/>.
/// Inputs: <c>rax=…</c> (any GPR by its 64-bit name, and rsp), <c>fl=CF,ZF</c> (or hex),
/// <c>m8[addr]=v</c>/<c>m16</c>/<c>m32</c>/<c>m64</c>, <c>bytes[addr]=01 02 …</c>.
/// Expected: the same plus <c>mask=…</c> (flags compared; default the six status flags),
/// <c>rip=addr</c> (where execution stopped), <c>fault=DE</c>. Values are hex with 0x or decimal.
/// </summary>
public class InstructionDataTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        var dir = Path.Combine(AppContext.BaseDirectory, "X86", "Data");
        foreach (var file in Directory.GetFiles(dir, "*.txt").Order(StringComparer.Ordinal))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
            {
                var l = lines[i].Trim();
                if (l.Length > 0 && !l.StartsWith('#'))
                {
                    data.Add($"{Path.GetFileName(file)}:{i + 1}: {l}");
                }
            }
        }

        return data;
    }

    [Fact]
    public void TheCaseFilesAreThereAndNonEmpty() => Assert.True(((IEnumerable<object[]>)Cases()).Count() > 100, "expected the X86/Data case files in the output directory");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Case(string line)
    {
        var where = line[..line.IndexOf(": ", StringComparison.Ordinal)];
        var cols = line[(where.Length + 2)..].Split('|').Select(c => c.Trim()).ToArray();
        Assert.True(cols.Length == 5, $"{where}: expected 5 columns");
        var bits = int.Parse(cols[0], CultureInfo.InvariantCulture);
        var code = Convert.FromHexString(cols[1].Replace(" ", "", StringComparison.Ordinal));
        var text = Disassemble(bits, code);
        var what = $"{where} [{text}]";

        using var h = CpuHarness.Create(bits);
        h.InstallFaultStubs();
        var page = new byte[0x1000];
        Array.Fill(page, (byte)0xF4);
        h.LoadBytes(CpuHarness.CodeBase, page);
        h.LoadBytes(CpuHarness.CodeBase, code);
        h.Cpu.Rip = CpuHarness.CodeBase;
        foreach (var (key, value) in Pairs(cols[3]))
        {
            Apply(h, key, value, what);
        }

        var exit = h.Run(100_000);
        Assert.True(exit.Reason == ExitReason.Hlt, $"{what}: stopped with {exit.Reason}, rip {h.Cpu.Rip:x}");

        var expectedFault = (int?)null;
        var flagMask = Rflags.Status;
        var pairs = Pairs(cols[4]).ToList();
        foreach (var (key, value) in pairs)
        {
            if (key == "fault")
            {
                expectedFault = FaultNumber(value);
            }
            else if (key == "mask")
            {
                flagMask = ParseFlags(value);
            }
        }

        Assert.True(expectedFault == h.FaultVector, $"{what}: expected fault {Name(expectedFault)}, got {Name(h.FaultVector)} (rip {h.Cpu.Rip:x})");
        foreach (var (key, value) in pairs)
        {
            Check(h, key, value, flagMask, what);
        }
    }

    private static string Name(int? v) => v is { } x ? "#" + GuestFault.Name((byte)x) : "none";

    private static int FaultNumber(string s) => Enumerable.Range(0, 32).First(v => GuestFault.Name((byte)v) == s.ToUpperInvariant());

    private static string Disassemble(int bits, byte[] code)
    {
        var d = Decoder.Create(bits, new ByteArrayCodeReader(code), CpuHarness.CodeBase);
        var parts = new List<string>();
        while (d.IP < CpuHarness.CodeBase + (ulong)code.Length)
        {
            d.Decode(out var ins);
            parts.Add(ins.ToString());
        }

        return string.Join("; ", parts);
    }

    private static IEnumerable<(string Key, string Value)> Pairs(string column)
    {
        // Tokens are key=value separated by spaces; a bytes[...] value runs to the next key.
        var tokens = column.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string? key = null;
        var value = new List<string>();
        foreach (var t in tokens)
        {
            var eq = t.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                if (key != null)
                {
                    yield return (key, string.Join(' ', value));
                }

                key = t[..eq].ToLowerInvariant();
                value = [t[(eq + 1)..]];
            }
            else
            {
                value.Add(t);
            }
        }

        if (key != null)
        {
            yield return (key, string.Join(' ', value).Trim());
        }
    }

    private static readonly string[] GprNames = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

    private static ulong Number(string s) => s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
        ? ulong.Parse(s[2..].Replace("_", "", StringComparison.Ordinal), NumberStyles.HexNumber, CultureInfo.InvariantCulture)
        : s.StartsWith('-') ? (ulong)long.Parse(s, CultureInfo.InvariantCulture) : ulong.Parse(s, CultureInfo.InvariantCulture);

    private static ulong ParseFlags(string s)
    {
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            return Number(s);
        }

        ulong f = 0;
        foreach (var n in s.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            f |= n.ToUpperInvariant() switch
            {
                "CF" => Rflags.CF, "PF" => Rflags.PF, "AF" => Rflags.AF, "ZF" => Rflags.ZF, "SF" => Rflags.SF,
                "OF" => Rflags.OF, "DF" => Rflags.DF, "IF" => Rflags.IF, "TF" => Rflags.TF, "NT" => Rflags.NT,
                "AC" => Rflags.AC, "ID" => Rflags.ID, "IOPL3" => Rflags.IOPL, "0" or "NONE" => 0,
                "STATUS" => Rflags.Status,
                _ => throw new FormatException("unknown flag " + n),
            };
        }

        return f;
    }

    private static (int Size, ulong Address)? Memory(string key)
    {
        if (!key.StartsWith('m') || !key.Contains('[', StringComparison.Ordinal))
        {
            return null;
        }

        var open = key.IndexOf('[', StringComparison.Ordinal);
        var size = int.Parse(key[1..open], CultureInfo.InvariantCulture) / 8;
        return (size, Number(key[(open + 1)..^1]));
    }

    private static void Apply(CpuHarness h, string key, string value, string what)
    {
        var gpr = Array.IndexOf(GprNames, key);
        if (gpr >= 0)
        {
            h.Cpu.Gpr[gpr] = Number(value);
        }
        else if (key == "fl")
        {
            h.Cpu.SetFlagsRaw(ParseFlags(value));
        }
        else if (key.StartsWith("bytes[", StringComparison.Ordinal))
        {
            h.LoadBytes(Number(key[6..^1]), Convert.FromHexString(value.Replace(" ", "", StringComparison.Ordinal)));
        }
        else if (Memory(key) is { } m)
        {
            var v = Number(value);
            for (var i = 0; i < m.Size; i++)
            {
                h.Machine.Memory.Write8(m.Address + (ulong)i, (byte)(v >> (8 * i)));
            }
        }
        else
        {
            Assert.Fail($"{what}: unknown input {key}");
        }
    }

    private static void Check(CpuHarness h, string key, string value, ulong flagMask, string what)
    {
        var gpr = Array.IndexOf(GprNames, key);
        if (gpr >= 0)
        {
            var expected = Number(value);
            Assert.True(expected == h.Cpu.Gpr[gpr], $"{what}: {key} expected {expected:x} got {h.Cpu.Gpr[gpr]:x}");
        }
        else if (key == "fl")
        {
            var expected = ParseFlags(value) & flagMask;
            var actual = h.Cpu.Flags & flagMask;
            Assert.True(expected == actual, $"{what}: flags (mask {flagMask:x}) expected {expected:x} got {actual:x}");
        }
        else if (key == "rip")
        {
            Assert.True(Number(value) == h.Cpu.Rip, $"{what}: stopped at {h.Cpu.Rip:x}, expected {value}");
        }
        else if (key.StartsWith("bytes[", StringComparison.Ordinal))
        {
            var expected = Convert.FromHexString(value.Replace(" ", "", StringComparison.Ordinal));
            var actual = h.Machine.Memory.ReadBytes(Number(key[6..^1]), expected.Length);
            Assert.True(expected.SequenceEqual(actual), $"{what}: {key} expected {Convert.ToHexString(expected)} got {Convert.ToHexString(actual)}");
        }
        else if (Memory(key) is { } m)
        {
            var expected = Number(value);
            ulong actual = 0;
            for (var i = 0; i < m.Size; i++)
            {
                actual |= (ulong)h.Machine.Memory.Read8(m.Address + (ulong)i) << (8 * i);
            }

            Assert.True(expected == actual, $"{what}: {key} expected {expected:x} got {actual:x}");
        }
        else if (key is not ("fault" or "mask"))
        {
            Assert.Fail($"{what}: unknown expectation {key}");
        }
    }
}
