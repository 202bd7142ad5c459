using Serilog.Core;
using Serilog.Events;

namespace ActorVm.Actors.Stress;

/// <summary>
/// I9 from the trace itself: the checker subscribes to the kvm_entry lines the vCPUs write
/// (VmOptions.TraceLogger) and matches each with the Entry hook that follows it on the same
/// vCPU: the <c>[immediate exit]</c> suffix must appear iff the entry is forced, and (≥ 6.16)
/// never on a re-entry of the inner loop.
/// </summary>
public sealed partial class InvariantChecker
{
    private const string EntryEvent = "kvm_entry: vcpu ";
    private const string ImmediateExit = "[immediate exit]";

    private volatile bool _traceChecked;

    /// <summary>kvm_entry lines the checker parsed.</summary>
    public long TraceLines => Interlocked.Read(ref _traceLines);

    private long _traceLines;

    /// <summary>
    /// A logger to pass as VmOptions.TraceLogger (with TraceEvents.KvmEntry): from then on every
    /// Entry hook must be preceded by exactly one kvm_entry line of its vCPU.
    /// </summary>
    public Serilog.ILogger EntryTraceLogger()
    {
        _traceChecked = true;
        return new Serilog.LoggerConfiguration().MinimumLevel.Verbose().WriteTo.Sink(new EntryTraceSink(this)).CreateLogger();
    }

    /// <summary>One formatted trace line (<c>&lt;sec.usec&gt; kvm_entry: vcpu N, rip 0x…[immediate exit]</c>).</summary>
    public void TraceLine(string line)
    {
        var at = line.IndexOf(EntryEvent, StringComparison.Ordinal);
        if (at < 0)
        {
            return;
        }

        var vcpu = 0;
        var i = at + EntryEvent.Length;
        while (i < line.Length && char.IsAsciiDigit(line[i]))
        {
            vcpu = (vcpu * 10) + (line[i++] - '0');
        }

        if (vcpu >= _tracks.Length)
        {
            return;
        }

        Interlocked.Increment(ref _traceLines);
        var t = _tracks[vcpu];
        lock (t)
        {
            t.TraceLines++;
            t.TraceImmediate = line.EndsWith(ImmediateExit, StringComparison.Ordinal);
        }
    }

    private void CheckTraceAtEntry(int vcpu, Track t, bool forced, bool reentry)
    {
        if (!_traceChecked)
        {
            return;
        }

        int lines;
        bool immediate;
        lock (t)
        {
            (lines, immediate) = (t.TraceLines, t.TraceImmediate);
            t.TraceLines = 0;
        }

        if (lines != 1)
        {
            Report("I9", vcpu, $"{lines} kvm_entry lines for one entry");
        }
        else if (immediate != forced)
        {
            Report("I9", vcpu, forced ? "forced entry traced without [immediate exit]" : "unforced entry traced with [immediate exit]");
        }
        else if (immediate && reentry)
        {
            Report("I9", vcpu, "[immediate exit] on a re-entry of the inner loop (from 6.16 only the first entry may carry it)");
        }
    }

    private sealed class EntryTraceSink(InvariantChecker checker) : ILogEventSink
    {
        public void Emit(LogEvent logEvent)
        {
            if (logEvent.Properties.TryGetValue("TraceLine", out var value) && value is ScalarValue { Value: string line })
            {
                checker.TraceLine(line);
            }
        }
    }
}
