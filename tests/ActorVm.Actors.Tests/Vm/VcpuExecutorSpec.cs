using ActorVm.Actors.Vm;
using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;

namespace ActorVm.Actors.Tests.Vm;

/// <summary>
/// The vCPU dispatcher's executor: a run queued while the other worker is busy starts on the idle
/// one at once (a halted vCPU's wake-up must not wait for the sender's slice), every run runs
/// exactly once, and shutdown, configuration and errors behave as documented.
/// </summary>
public sealed class VcpuExecutorSpec
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10); // a wait, not a time assertion: generous for a loaded CI host

    private sealed class Runnable(Action action) : IRunnable
    {
        public void Run() => action();

        public void Execute() => action();
    }

    [Fact]
    public void ARunQueuedByABusyWorker_StartsOnTheIdleWorker_BeforeTheBusyRunEnds()
    {
        var executor = new VcpuExecutor("spec-wake", 2, TimeSpan.Zero);
        try
        {
            // The busy run stands for a guest slice that posts a halted vCPU's Wake and keeps
            // spinning: it ends only when the woken run has started (or the bound expires).
            for (var round = 0; round < 50; round++)
            {
                var woken = new ManualResetEventSlim();
                var busyDone = new ManualResetEventSlim();
                int busyThread = 0, wokenThread = 0;
                var startedWhileBusy = false;
                executor.Execute(new Runnable(() =>
                {
                    busyThread = Environment.CurrentManagedThreadId;
                    executor.Execute(new Runnable(() =>
                    {
                        wokenThread = Environment.CurrentManagedThreadId;
                        woken.Set();
                    }));
                    var deadline = DateTime.UtcNow + Bound;
                    while (!woken.IsSet && DateTime.UtcNow < deadline)
                    {
                        Thread.SpinWait(50);
                    }

                    startedWhileBusy = woken.IsSet;
                    busyDone.Set();
                }));

                Assert.True(busyDone.Wait(Bound * 2), $"round {round}: the busy run never finished");
                Assert.True(startedWhileBusy, $"round {round}: the queued run waited for the busy run to end");
                Assert.NotEqual(busyThread, wokenThread);

                // Let the idle worker go back to sleep before the next round.
                Thread.Sleep(2);
            }
        }
        finally
        {
            executor.Shutdown();
        }
    }

    [Fact]
    public async Task RunsFromManyProducers_EachRunExactlyOnce()
    {
        const int Producers = 4, PerProducer = 5_000;
        var executor = new VcpuExecutor("spec-count", 2, TimeSpan.Zero);
        var counts = new int[Producers * PerProducer];
        using var all = new CountdownEvent(counts.Length);
        try
        {
            var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(() =>
            {
                for (var i = 0; i < PerProducer; i++)
                {
                    var slot = p * PerProducer + i;
                    executor.Execute(new Runnable(() =>
                    {
                        Interlocked.Increment(ref counts[slot]);
                        all.Signal();
                    }));
                }
            })).ToArray();
            await Task.WhenAll(producers).WaitAsync(Bound);
            Assert.True(all.Wait(Bound), $"{all.CurrentCount} runs never ran");
            Assert.All(counts, c => Assert.Equal(1, c));
        }
        finally
        {
            executor.Shutdown();
        }
    }

    [Fact]
    public void WithAnIdlePoll_QueuedRunsStillAllRun()
    {
        var executor = new VcpuExecutor("spec-poll", 2, TimeSpan.FromMicroseconds(100));
        using var all = new CountdownEvent(1_000);
        try
        {
            for (var i = 0; i < 1_000; i++)
            {
                executor.Execute(new Runnable(() => all.Signal()));
                if (i % 100 == 0)
                {
                    Thread.Sleep(1); // past the poll window: the workers sleep and must be woken
                }
            }

            Assert.True(all.Wait(Bound), $"{all.CurrentCount} runs never ran");
        }
        finally
        {
            executor.Shutdown();
        }
    }

    [Fact]
    public void Shutdown_FinishesQueuedRuns_ThenRejectsNewOnes()
    {
        var executor = new VcpuExecutor("spec-shutdown", 1, TimeSpan.Zero);
        using var gate = new ManualResetEventSlim();
        using var ran = new CountdownEvent(3);
        executor.Execute(new Runnable(() =>
        {
            gate.Wait(Bound);
            ran.Signal();
        }));
        executor.Execute(new Runnable(() => ran.Signal()));
        executor.Execute(new Runnable(() => ran.Signal()));
        executor.Shutdown();
        gate.Set();

        Assert.True(ran.Wait(Bound), "runs queued before the shutdown were dropped");
        var e = Assert.Throws<RejectedExecutionException>(() => executor.Execute(new Runnable(() => { })));
        Assert.Contains("spec-shutdown", e.Message);
    }

    [Fact]
    public void ARunThatThrows_DoesNotCostTheExecutorItsThread()
    {
        var executor = new VcpuExecutor("spec-throw", 1, TimeSpan.Zero);
        using var after = new ManualResetEventSlim();
        try
        {
            executor.Execute(new Runnable(() => throw new InvalidOperationException("boom")));
            executor.Execute(new Runnable(after.Set));
            Assert.True(after.Wait(Bound), "the only worker died with the failing run");
        }
        finally
        {
            executor.Shutdown();
        }
    }

    [Fact]
    public async Task BadSettings_AreRejectedWithTheirName()
    {
        Assert.Equal("threads", Assert.Throws<ArgumentOutOfRangeException>(() => new VcpuExecutor("x", 0, TimeSpan.Zero)).ParamName);
        Assert.Equal("idlePoll", Assert.Throws<ArgumentOutOfRangeException>(() => new VcpuExecutor("x", 1, TimeSpan.FromTicks(-1))).ParamName);

        foreach (var (setting, name) in new[] { ("thread-count = 0", "thread-count"), ("idle-poll-microseconds = -1", "idle-poll-microseconds") })
        {
            var config = ConfigurationFactory.ParseString($$"""
                bad-dispatcher {
                  type = Dispatcher
                  executor = "{{typeof(VcpuExecutorConfigurator).AssemblyQualifiedName}}"
                  vcpu-executor { {{setting}} }
                }
                """);
            var system = ActorSystem.Create("bad-" + name, config);
            try
            {
                var e = Assert.ThrowsAny<Exception>(() => system.Dispatchers.Lookup("bad-dispatcher"));
                Assert.Contains(name, Flatten(e));
            }
            finally
            {
                await system.Terminate().WaitAsync(Bound);
            }
        }
    }

    [Fact]
    public async Task TheVcpuDispatcher_RunsActorsOnTheExecutorsThreads()
    {
        var system = ActorSystem.Create("vcpu-executor-spec", VmRunner.DispatcherConfig);
        try
        {
            var probe = system.ActorOf(Props.Create(() => new ThreadNameActor()).WithDispatcher(VmActor.VcpuDispatcherId));
            var name = await probe.Ask<string>("name", Bound);
            Assert.StartsWith(VmActor.VcpuDispatcherId + "-", name);
        }
        finally
        {
            await system.Terminate().WaitAsync(Bound);
        }
    }

    private sealed class ThreadNameActor : ReceiveActor
    {
        public ThreadNameActor() => Receive<string>(_ => Sender.Tell(Thread.CurrentThread.Name ?? "(unnamed)"));
    }

    private static string Flatten(Exception e) => e.InnerException is null ? e.Message : e.Message + " | " + Flatten(e.InnerException);
}
