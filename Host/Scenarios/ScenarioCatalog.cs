using System.Text.Json;

namespace ActorVm.Host.Scenarios;

/// <summary>The scenarios in a configs/ folder, for <c>list</c>.</summary>
public static class ScenarioCatalog
{
    /// <summary>configs/ next to the working directory or any parent of it or of the host's binaries.</summary>
    public static string? FindConfigsDirectory()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "configs");
                if (File.Exists(Path.Combine(candidate, "scenario.schema.json")))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    /// <summary>(file, name, description) of every *.json scenario in <paramref name="directory"/>, sorted by name; unreadable files say so in the description.</summary>
    public static IEnumerable<(string File, string Name, string Description)> List(string directory)
    {
        foreach (var file in Directory.EnumerateFiles(directory, "*.json").Where(f => !f.EndsWith(".schema.json", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            string name, description;
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(file), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
                name = doc.RootElement.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : Path.GetFileNameWithoutExtension(file);
                description = doc.RootElement.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "(no description)";
            }
            catch (JsonException e)
            {
                name = Path.GetFileNameWithoutExtension(file);
                description = $"(not valid JSON: {e.Message.Split('.')[0]}; run `validate`)";
            }

            yield return (file, name, description);
        }
    }
}
