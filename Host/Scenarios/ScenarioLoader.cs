using System.Reflection;
using System.Text.Json;
using Json.Schema;

namespace ActorVm.Host.Scenarios;

/// <summary>
/// Reads and validates scenario files. Structure is checked against configs/scenario.schema.json
/// (the same file editors use, embedded here), so the schema is the single description of the
/// format; this class adds what a schema cannot say: "did you mean" for unknown fields, files
/// that must exist, machines that cannot be built. Every problem is reported, not only the first.
/// </summary>
public static class ScenarioLoader
{
    /// <summary>Largest vCPU count addressable in xAPIC mode: IDs 0-254 (0xFF is broadcast).</summary>
    public const int MaxXApicVcpus = 255;

    private static readonly Lazy<(JsonSchema Schema, JsonElement Root)> Schema = new(LoadSchema);

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNameCaseInsensitive = false,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>The schema text, for `validate --schema` and tests.</summary>
    public static string SchemaText { get; } = ReadSchemaText();

    public static Scenario Load(string path, Func<string, bool>? programExists = null)
    {
        var errors = new List<ScenarioError>();
        if (!File.Exists(path))
        {
            throw new ScenarioException([new ScenarioError(path, "-", "file not found")]);
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions
            {
                CommentHandling = JsonCommentHandling.Skip,
                AllowTrailingCommas = true,
            });
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $"line {line + 1}, column {e.BytePositionInLine + 1}" : "-";
            throw new ScenarioException([new ScenarioError(path, where, $"not valid JSON: {FirstSentence(e.Message)}")]);
        }

        using (document)
        {
            var root = document.RootElement;
            errors.AddRange(SchemaErrors(path, root));
            if (errors.Count == 0)
            {
                var scenario = Deserialize(root) with { SourcePath = Path.GetFullPath(path) };
                errors.AddRange(SemanticErrors(path, scenario, programExists));
                if (errors.Count == 0)
                {
                    return scenario;
                }
            }
        }

        throw new ScenarioException(errors);
    }

    private static Scenario Deserialize(JsonElement root)
    {
        var machine = root.TryGetProperty("machine", out var m) ? m.Deserialize<MachineSpec>(Json)! : new MachineSpec();
        var guestElement = root.GetProperty("guest");
        GuestSpec guest;
        if (guestElement.TryGetProperty("program", out var p))
        {
            var args = p.TryGetProperty("args", out var a)
                ? a.EnumerateObject().ToDictionary(x => x.Name, x => x.Value.ValueKind == JsonValueKind.String ? x.Value.GetString()! : x.Value.GetRawText())
                : null;
            guest = new GuestSpec(Program: new ProgramSpec(p.GetProperty("name").GetString()!, args));
        }
        else
        {
            guest = new GuestSpec(Kernel: guestElement.GetProperty("kernel").Deserialize<KernelSpec>(Json));
        }

        var limits = root.TryGetProperty("limits", out var l) ? l.Deserialize<LimitsSpec>(Json)! : new LimitsSpec();
        var expect = root.TryGetProperty("expect", out var e) ? e.Deserialize<Expectations>(Json)! : new Expectations();
        return new Scenario(root.GetProperty("name").GetString()!, root.GetProperty("description").GetString()!, machine, guest, limits, expect);
    }

    private static IEnumerable<ScenarioError> SemanticErrors(string file, Scenario s, Func<string, bool>? programExists)
    {
        var vcpus = s.Machine.Vcpus ?? 1;
        if (vcpus > MaxXApicVcpus && s.Machine.Apic != "x2apic")
        {
            yield return new ScenarioError(file, "$.machine.vcpus",
                $"{vcpus} vCPUs cannot be addressed in xAPIC mode (at most {MaxXApicVcpus}); set \"apic\": \"x2apic\"");
        }

        if (s.Guest.Kernel is { } k)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(file))!;
            if (!File.Exists(Path.Combine(dir, k.Path)))
            {
                yield return new ScenarioError(file, "$.guest.kernel.path", $"kernel image '{k.Path}' not found (relative to {dir})");
            }

            if (k.Initrd is { } initrd && !File.Exists(Path.Combine(dir, initrd)))
            {
                yield return new ScenarioError(file, "$.guest.kernel.initrd", $"initrd '{initrd}' not found (relative to {dir})");
            }
        }

        if (s.Guest.Program is { } p && programExists is not null && !programExists(p.Name))
        {
            yield return new ScenarioError(file, "$.guest.program.name", $"no built-in program named '{p.Name}' (see `list --programs`)");
        }
    }

    private static IEnumerable<ScenarioError> SchemaErrors(string file, JsonElement root)
    {
        var (schema, schemaRoot) = Schema.Value;
        var result = schema.Evaluate(root, new EvaluationOptions { OutputFormat = OutputFormat.List });
        if (result.IsValid)
        {
            yield break;
        }

        var seen = new HashSet<string>();
        foreach (var detail in result.Details ?? [])
        {
            if (detail.Errors is null)
            {
                continue;
            }

            var instance = detail.InstanceLocation.ToString();
            var jsonPath = ToJsonPath(instance);
            foreach (var (keyword, message) in detail.Errors)
            {
                var text = detail.EvaluationPath.ToString().EndsWith("/additionalProperties", StringComparison.Ordinal)
                    && keyword is "" or "false"
                    ? UnknownField(instance, detail.EvaluationPath.ToString(), schemaRoot)
                    : Describe(keyword, message, Found(root, instance), SchemaNode(schemaRoot, detail.EvaluationPath.ToString()));
                if (seen.Add(jsonPath + "\n" + text))
                {
                    yield return new ScenarioError(file, jsonPath, text);
                }
            }
        }
    }

    private static string Describe(string keyword, string message, JsonElement? found, JsonElement? schemaNode)
    {
        var foundText = found is { } f ? $"found {f.GetRawText()}" : "found nothing";
        switch (keyword)
        {
            case "required":
                return $"missing {message.Replace("Required properties ", "required field(s) ", StringComparison.Ordinal).Replace(" are not present", "", StringComparison.Ordinal)}";
            case "enum" when schemaNode is { } n && n.TryGetProperty("enum", out var values):
                return $"expected one of {string.Join(", ", values.EnumerateArray().Select(v => v.GetRawText()))}; {foundText}";
            case "type" when schemaNode is { } n && n.TryGetProperty("type", out var type):
                return $"expected {(type.ValueKind == JsonValueKind.Array ? string.Join(" or ", type.EnumerateArray().Select(t => t.GetString())) : type.GetString())}; {foundText}";
            case "minimum" or "maximum" or "exclusiveMinimum" or "minLength" or "pattern" or "minProperties" or "maxProperties"
                when schemaNode is { } n && n.TryGetProperty(keyword, out var bound):
                return $"expected {keyword} {bound.GetRawText()}; {foundText}";
            default:
                return $"{message}; {foundText}";
        }
    }

    private static JsonElement? Found(JsonElement root, string pointer)
    {
        var node = root;
        foreach (var segment in pointer.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = Unescape(segment);
            if (node.ValueKind == JsonValueKind.Object && node.TryGetProperty(name, out var child))
            {
                node = child;
            }
            else if (node.ValueKind == JsonValueKind.Array && int.TryParse(name, out var i) && i < node.GetArrayLength())
            {
                node = node[i];
            }
            else
            {
                return null;
            }
        }

        return node;
    }

    /// <summary>The schema object at an evaluation path (the subschema whose keyword failed).</summary>
    private static JsonElement? SchemaNode(JsonElement schemaRoot, string evaluationPath)
    {
        var node = schemaRoot;
        foreach (var segment in evaluationPath.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!node.TryGetProperty(Unescape(segment), out node))
            {
                return null;
            }
        }

        return node;
    }

    private static string UnknownField(string instanceLocation, string evaluationPath, JsonElement schemaRoot)
    {
        var name = Unescape(instanceLocation[(instanceLocation.LastIndexOf('/') + 1)..]);
        var parentSchemaPath = evaluationPath[..^"/additionalProperties".Length];
        var known = KnownProperties(schemaRoot, parentSchemaPath);
        var suggestion = known.OrderBy(k => Levenshtein(k, name)).FirstOrDefault();
        var hint = suggestion is not null && Levenshtein(suggestion, name) <= Math.Max(2, name.Length / 3) ? $"; did you mean '{suggestion}'?" : "";
        return known.Count > 0
            ? $"unknown field '{name}'{hint} (expected one of: {string.Join(", ", known)})"
            : $"unknown field '{name}'";
    }

    private static List<string> KnownProperties(JsonElement schemaRoot, string schemaPath)
    {
        var node = schemaRoot;
        foreach (var segment in schemaPath.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!node.TryGetProperty(Unescape(segment), out node))
            {
                return [];
            }
        }

        return node.TryGetProperty("properties", out var props)
            ? [.. props.EnumerateObject().Select(p => p.Name).Where(n => n != "$schema")]
            : [];
    }

    private static string ToJsonPath(string pointer) =>
        "$" + string.Concat(pointer.Split('/', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => int.TryParse(s, out var i) ? $"[{i}]" : s.Contains('.') || s.Contains(' ') ? $"[\"{Unescape(s)}\"]" : "." + Unescape(s)));

    private static string Unescape(string pointerSegment) => pointerSegment.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }

    /// <summary>Edit distance, for "did you mean".</summary>
    public static int Levenshtein(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
            }
        }

        return d[a.Length, b.Length];
    }

    private static string ReadSchemaText()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("ActorVm.Host.scenario.schema.json")
            ?? throw new InvalidOperationException("scenario.schema.json is not embedded in the host");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static (JsonSchema, JsonElement) LoadSchema() =>
        (JsonSchema.FromText(SchemaText), JsonDocument.Parse(SchemaText).RootElement);
}
