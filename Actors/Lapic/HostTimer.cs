using ActorVm.Hardware.X86;
using Akka.Actor;

namespace ActorVm.Actors.Lapic;

/// <summary>
/// The sw timer backend's hrtimer: one dedicated thread per VM with a priority queue of guest-TSC
/// deadlines. Akka's scheduler ticks at 10 ms, far too coarse for APIC timers, so this thread
/// waits on the VM's own clock (coarse Monitor.Wait, then a short spin for the last stretch) and
/// Tells the expiry message to its LAPIC actor. Lateness (host-observed TSC minus deadline) is
/// measured for the statistics.
/// </summary>
public sealed class HostTimer : IDisposable
{
    private static readonly TimeSpan SpinThreshold = TimeSpan.FromMicroseconds(200);
    private static readonly TimeSpan MaxWait = TimeSpan.FromMilliseconds(1);

    private readonly ITscClock _clock;
    private readonly PriorityQueue<(IActorRef Target, object Message), ulong> _queue = new();
    private readonly object _lock = new();
    private readonly Thread _thread;
    private bool _disposed;
    private long _fired;
    private long _maxLatenessTicks;

    public HostTimer(ITscClock clock)
    {
        _clock = clock;
        _thread = new Thread(Loop) { IsBackground = true, Name = "actorvm-hrtimer", Priority = ThreadPriority.AboveNormal };
        _thread.Start();
    }

    public long Fired => Interlocked.Read(ref _fired);

    /// <summary>Worst observed lateness in microseconds.</summary>
    public double MaxLatenessMicroseconds => Interlocked.Read(ref _maxLatenessTicks) * 1e6 / Math.Max(1UL, _clock.Frequency);

    /// <summary>Sends <paramref name="message"/> to <paramref name="target"/> once the guest TSC reaches <paramref name="deadlineTsc"/>.</summary>
    public void Schedule(ulong deadlineTsc, IActorRef target, object message)
    {
        lock (_lock)
        {
            _queue.Enqueue((target, message), deadlineTsc);
            Monitor.Pulse(_lock);
        }
    }

    private void Loop()
    {
        while (true)
        {
            (IActorRef Target, object Message) due;
            ulong deadline;
            lock (_lock)
            {
                while (true)
                {
                    if (_disposed)
                    {
                        return;
                    }

                    if (_queue.TryPeek(out due, out deadline))
                    {
                        var now = _clock.ReadTsc();
                        if (now >= deadline)
                        {
                            _queue.Dequeue();
                            RecordLateness(now - deadline);
                            break;
                        }

                        var remaining = TimeSpan.FromSeconds((deadline - now) / (double)Math.Max(1UL, _clock.Frequency));
                        if (remaining <= SpinThreshold)
                        {
                            Monitor.Exit(_lock);
                            try
                            {
                                Thread.SpinWait(50);
                            }
                            finally
                            {
                                Monitor.Enter(_lock);
                            }

                            continue;
                        }

                        Monitor.Wait(_lock, remaining - SpinThreshold < MaxWait ? remaining - SpinThreshold : MaxWait);
                    }
                    else
                    {
                        Monitor.Wait(_lock, MaxWait * 50);
                    }
                }
            }

            Interlocked.Increment(ref _fired);
            due.Target.Tell(due.Message);
        }
    }

    private void RecordLateness(ulong ticks)
    {
        long seen;
        while ((long)ticks > (seen = Interlocked.Read(ref _maxLatenessTicks)))
        {
            Interlocked.CompareExchange(ref _maxLatenessTicks, (long)ticks, seen);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            Monitor.PulseAll(_lock);
        }

        _thread.Join(TimeSpan.FromSeconds(1));
    }
}
