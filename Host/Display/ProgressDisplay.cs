using System.Globalization;
using ActorVm.Actors.Stats;
using Spectre.Console;

namespace ActorVm.Host.Display;

/// <summary>
/// The live view on stderr while a VM runs (terminal only): per vCPU its state (running or
/// halted), instructions retired and exits per second, plus elapsed and remaining time.
/// Fed by <see cref="RunMonitor"/> a few times a second.
/// </summary>
public sealed class ProgressDisplay(IAnsiConsole console, string name, double? timeoutSeconds)
{
    private LiveDisplayContext? _context;
    private VmStatistics? _previous;
    private DateTime _previousAt;
    private Task? _live;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Start()
    {
        _live = console.Live(new Text($"{name}: starting")).AutoClear(true).StartAsync(async ctx =>
        {
            _context = ctx;
            _ready.TrySetResult();
            await _done.Task.ConfigureAwait(false);
        });
        _ready.Task.Wait(TimeSpan.FromSeconds(1));
    }

    public void Update(VmStatistics stats, TimeSpan elapsed)
    {
        if (_context is null)
        {
            return;
        }

        var now = DateTime.UtcNow;
        var dt = _previous is null ? elapsed.TotalSeconds : (now - _previousAt).TotalSeconds;
        var c = CultureInfo.InvariantCulture;
        var header = new Markup(Markup.Escape(string.Create(c,
            $"{name} — elapsed {elapsed.TotalSeconds:0.0} s{(timeoutSeconds is { } t ? $", remaining {Math.Max(0, t - elapsed.TotalSeconds):0.0} s" : "")}, {stats.Total.InstructionsRetired:N0} instructions")));
        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumns("vCPU", "state", "instructions", "exits/s");

        // Fit the terminal: a live display taller than the screen loses its top lines.
        var rows = Math.Max(1, Math.Min(SummaryRenderer.MaxRows, console.Profile.Height - 8));
        foreach (var v in stats.PerVcpu.Take(rows))
        {
            var before = _previous?.PerVcpu[v.Vcpu];
            var exits = v.ExitsByReason.Values.Sum() - (before?.ExitsByReason.Values.Sum() ?? 0);
            // Running: it retired instructions since the last frame (the first frame: since the
            // start), so a vCPU that never ran shows as halted from the first frame on.
            var running = v.InstructionsRetired != (before?.InstructionsRetired ?? 0);
            table.AddRow(v.Vcpu.ToString(c), running ? "[green]running[/]" : "[grey]halted[/]", v.InstructionsRetired.ToString("N0", c),
                (dt > 0 ? exits / dt : 0).ToString("N0", c));
        }

        if (stats.PerVcpu.Count > rows)
        {
            table.AddRow($"… {stats.PerVcpu.Count - rows} more", "", "", "");
        }

        _previous = stats;
        _previousAt = now;
        _context.UpdateTarget(new Rows(header, table));
    }

    public void Stop()
    {
        _done.TrySetResult();
        _live?.Wait(TimeSpan.FromSeconds(1));
    }
}
