using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using ActorVm.Actors.Lapic;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;

namespace ActorVm.Host.Tracing;

/// <summary>
/// Records a run as Chrome trace-event JSON (the format chrome://tracing and Perfetto open):
/// one track (tid) per vCPU with a "guest" slice for each entry, each exit as an instant event
/// named by its reason, category <c>fastpath</c> or <c>slowpath</c> (and coloured by it), and
/// IPIs and LAPIC timer deliveries as flow arrows (bind_id/flow_out → flow_in) from a slice on
/// the sender's track to one on the receiver's. Timer arrows start on a "LAPIC timers" track.
/// Bounded: after <see cref="MaxEvents"/> events it stops recording and says so in the file.
/// </summary>
public sealed class ChromeTraceRecorder(int vcpus, string title, int maxEvents = ChromeTraceRecorder.DefaultMaxEvents) : IRunLoopObserver, IApicEventListener
{
    public const int DefaultMaxEvents = 400_000;

    /// <summary>The track of the LAPIC timers (tid), after the vCPUs'.</summary>
    public int TimerTrack => vcpus;

    /// <summary>
    /// The VM's process id, past every track's tid: viewers take the thread whose tid equals the
    /// pid for the process's main thread and sort it first (Perfetto does), which with pid 1
    /// put vCPU 1 above vCPU 0.
    /// </summary>
    public int ProcessId => vcpus + 1;

    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly ConcurrentQueue<Dictionary<string, object>> _events = new();
    private readonly double[] _entryAt = new double[vcpus];
    private readonly ConcurrentDictionary<(int Source, byte Vector), double> _sentAt = new();
    private long _count;
    private long _nextFlow;

    public int MaxEvents => maxEvents;

    public bool Truncated => Interlocked.Read(ref _count) >= maxEvents;

    private double Now => Stopwatch.GetElapsedTime(_start).TotalMicroseconds;

    public void Entry(int vcpu, long requestsAtCheck, int modeAtCheck, bool forced, bool reentry) => _entryAt[vcpu] = Now;

    public void Exit(int vcpu, in VmExit exit, FastpathResult fastpath, bool forced)
    {
        var now = Now;
        var reason = exit.Reason.TraceName();
        var fast = fastpath is FastpathResult.ReenterGuest or FastpathResult.ExitHandled;
        Add(new()
        {
            ["name"] = forced ? "guest (forced exit)" : "guest",
            ["ph"] = "X",
            ["ts"] = _entryAt[vcpu],
            ["dur"] = Math.Max(0.001, now - _entryAt[vcpu]),
            ["pid"] = ProcessId,
            ["tid"] = vcpu,
            ["cat"] = "guest",
            ["cname"] = "thread_state_running",
            ["args"] = new Dictionary<string, object> { ["instructions"] = exit.InstructionsRetired },
        });
        Add(new()
        {
            ["name"] = reason,
            ["ph"] = "i",
            ["s"] = "t",
            ["ts"] = now,
            ["pid"] = ProcessId,
            ["tid"] = vcpu,
            ["cat"] = fast ? "exit,fastpath" : "exit,slowpath",
            ["cname"] = fast ? "good" : "terrible",
            ["args"] = new Dictionary<string, object> { ["reason"] = reason, ["fastpath"] = fastpath.ToString(), ["forced"] = forced },
        });
    }

    public void EntryCancelled(int vcpu, long requestsAtCheck, int modeAtCheck)
    {
    }

    public void RequestServiced(int vcpu, int bit)
    {
    }

    public void Injected(int vcpu, EventInjection injection, bool reinjected)
    {
    }

    public void BlockChanged(int vcpu, bool blocked) => Add(new()
    {
        ["name"] = blocked ? "halted" : "woken",
        ["ph"] = "i",
        ["s"] = "t",
        ["ts"] = Now,
        ["pid"] = ProcessId,
        ["tid"] = vcpu,
        ["cat"] = "block",
    });

    public void IpiSent(int vcpu, InterruptMessage message) => _sentAt[(vcpu, message.Vector)] = Now;

    public void IpiAccepted(int vcpu, InterruptMessage message)
    {
        var now = Now;
        var sent = _sentAt.TryGetValue((message.SourceVcpu, message.Vector), out var t) ? t : now;
        Flow($"IPI 0x{message.Vector:x2}", "ipi", message.SourceVcpu, sent, vcpu, now);
    }

    public void TimerFired(int vcpu)
    {
        var now = Now;
        Flow("LAPIC timer", "timer", TimerTrack, now, vcpu, now);
    }

    /// <summary>Writes the JSON file: metadata (process and track names) first, then the events in time order.</summary>
    public void Write(string path)
    {
        var events = new List<Dictionary<string, object>>
        {
            Meta("process_name", 0, new() { ["name"] = $"ActorVm {title}" }),
        };
        for (var i = 0; i < vcpus; i++)
        {
            events.Add(Meta("thread_name", i, new() { ["name"] = $"vCPU {i}" }));
            events.Add(Meta("thread_sort_index", i, new() { ["sort_index"] = i }));
        }

        events.Add(Meta("thread_name", TimerTrack, new() { ["name"] = "LAPIC timers" }));
        events.Add(Meta("thread_sort_index", TimerTrack, new() { ["sort_index"] = TimerTrack }));
        events.AddRange(_events.OrderBy(e => (double)e["ts"]));
        var document = new Dictionary<string, object>
        {
            ["traceEvents"] = events,
            ["displayTimeUnit"] = "ns",
            ["otherData"] = new Dictionary<string, object>
            {
                ["producer"] = "ActorVm --trace-json",
                ["scenario"] = title,
                ["vcpus"] = vcpus,
                ["truncated"] = Truncated,
                ["maxEvents"] = maxEvents,
            },
        };
        using var stream = File.Create(path);
        JsonSerializer.Serialize(stream, document);
    }

    private void Flow(string name, string category, int fromTrack, double from, int toTrack, double to)
    {
        var id = Interlocked.Increment(ref _nextFlow);
        Add(new()
        {
            ["name"] = $"{name} send",
            ["ph"] = "X",
            ["ts"] = from,
            ["dur"] = 0.5,
            ["pid"] = ProcessId,
            ["tid"] = fromTrack,
            ["cat"] = category,
            ["bind_id"] = id,
            ["flow_out"] = true,
            ["args"] = new Dictionary<string, object> { ["to"] = toTrack },
        });
        Add(new()
        {
            ["name"] = $"{name} accept",
            ["ph"] = "X",
            ["ts"] = Math.Max(to, from + 0.5),
            ["dur"] = 0.5,
            ["pid"] = ProcessId,
            ["tid"] = toTrack,
            ["cat"] = category,
            ["bind_id"] = id,
            ["flow_in"] = true,
            ["args"] = new Dictionary<string, object> { ["from"] = fromTrack },
        });
    }

    private void Add(Dictionary<string, object> e)
    {
        if (Interlocked.Increment(ref _count) <= maxEvents)
        {
            _events.Enqueue(e);
        }
    }

    private Dictionary<string, object> Meta(string name, int tid, Dictionary<string, object> args) => new()
    {
        ["name"] = name,
        ["ph"] = "M",
        ["pid"] = ProcessId,
        ["tid"] = tid,
        ["args"] = args,
    };
}
