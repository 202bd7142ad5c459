using Akka.Dispatch;
using Serilog;

namespace ActorVm.Actors.Vm;

/// <summary>
/// The vCPU dispatcher's threads: a fixed set of dedicated workers over one FIFO of mailbox
/// runs, like Akka's ForkJoin executor, except for how an idle worker waits. Here it sleeps in
/// the kernel (Monitor.Wait), after an optional busy poll that never yields (off by default),
/// and every queued run wakes one sleeper.
/// <para>
/// Why not Akka's ForkJoin executor (Helios DedicatedThreadPool): its idle worker first spins
/// on an "unfair semaphore", yielding with Thread.Sleep(0) (sched_yield) between looks, and a
/// release meant for a spinner is only a counter, no futex wake. On a 2-core host the spinner
/// shares a run queue with a thread running a guest slice, so it sees the counter only when that
/// slice's turn ends; by then the busy thread has dequeued the run itself, the spinner finds the
/// queue empty and spins again. A halted vCPU's wake-up (kvm_vcpu_wake_up's rcuwait_wake_up,
/// here a Wake message posted by the sender's slice) then waited a whole slice, ≈ 550 µs per IPI
/// (docs/PERFORMANCE.md §2). A worker woken by a futex instead goes through the kernel's wake-up
/// path, which places it on an idle CPU if there is one, as a halted vCPU's task is woken in KVM.
/// </para>
/// </summary>
public sealed class VcpuExecutor : ExecutorService
{
    private readonly Queue<IRunnable> _runs = new();
    private readonly Thread[] _workers;
    private readonly long _pollTicks;
    private int _queued;
    private int _sleeping;
    private bool _shutdown;

    /// <param name="id">The dispatcher's id (thread names).</param>
    /// <param name="threads">Workers, one per host core for the vCPU dispatcher.</param>
    /// <param name="idlePoll">
    /// How long an idle worker busy-polls the queue before it sleeps (KVM's halt_poll_ns for the
    /// host thread): a run queued within it starts without a kernel wake-up (tens of µs in a VM).
    /// The poll never yields the CPU, so it cannot livelock as a yielding spinner can; it only
    /// delays a slice sharing its core by at most this much per idle transition.
    /// </param>
    public VcpuExecutor(string id, int threads, TimeSpan idlePoll) : base(id)
    {
        if (threads < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "the vCPU executor needs at least one thread");
        }

        if (idlePoll < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(idlePoll), idlePoll, "the idle poll cannot be negative");
        }

        _pollTicks = (long)(idlePoll.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        _workers = new Thread[threads];
        for (var i = 0; i < threads; i++)
        {
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"{id}-{i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Threads of this executor (for tests).</summary>
    public int ThreadCount => _workers.Length;

    /// <summary>Queues a mailbox run; wakes one sleeping worker if any (the queue's lock orders the two).</summary>
    public override void Execute(IRunnable run)
    {
        lock (_runs)
        {
            if (_shutdown)
            {
                throw new RejectedExecutionException($"{Id} is shut down");
            }

            _runs.Enqueue(run);
            Volatile.Write(ref _queued, _runs.Count);
            if (_sleeping > 0)
            {
                Monitor.Pulse(_runs);
            }
        }
    }

    /// <summary>Workers finish the queued runs, then exit.</summary>
    public override void Shutdown()
    {
        lock (_runs)
        {
            _shutdown = true;
            Monitor.PulseAll(_runs);
        }
    }

    private void Work()
    {
        while (Take() is { } run)
        {
            try
            {
                run.Run();
            }
            catch (Exception e)
            {
                // A mailbox run handles its actor's failures; anything escaping it is a bug in
                // the runtime, and the worker must stay, or the dispatcher loses a thread.
                Log.Error(e, "{Executor}: a mailbox run threw", Id);
            }
        }
    }

    private IRunnable? Take()
    {
        if (Volatile.Read(ref _queued) == 0)
        {
            Poll();
        }

        lock (_runs)
        {
            while (_runs.Count == 0)
            {
                if (_shutdown)
                {
                    return null;
                }

                _sleeping++;
                Monitor.Wait(_runs);
                _sleeping--;
            }

            var run = _runs.Dequeue();
            Volatile.Write(ref _queued, _runs.Count);
            return run;
        }
    }

    /// <summary>Busy-polls for a queued run for at most the idle-poll window (no yield, no lock).</summary>
    private void Poll()
    {
        if (_pollTicks == 0)
        {
            return;
        }

        var until = System.Diagnostics.Stopwatch.GetTimestamp() + _pollTicks;
        while (Volatile.Read(ref _queued) == 0 && !Volatile.Read(ref _shutdown))
        {
            if (System.Diagnostics.Stopwatch.GetTimestamp() >= until)
            {
                return;
            }

            Thread.SpinWait(20);
        }
    }
}
