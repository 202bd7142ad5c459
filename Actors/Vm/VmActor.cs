using ActorVm.Actors.Lapic;
using ActorVm.Actors.Logging;
using ActorVm.Actors.RunLoop;
using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Hardware;
using ActorVm.Hardware.Apic;
using Akka.Actor;
using static ActorVm.Actors.Vm.VmProtocol;

namespace ActorVm.Actors.Vm;

/// <summary>
/// The supervisor: per vCPU a LapicActor, a VcpuActor (on the vCPU dispatcher) and a
/// RunLoopActor; the entry of device interrupts onto the APIC bus (<see cref="ApicBus"/>, which
/// the vCPUs' actors use directly for IPIs); the VM lifecycle. The first
/// shutdown, failure or stop decides the result; any child failure ends the VM with an error
/// (never a hang).
/// </summary>
public sealed partial class VmActor : ReceiveActor, IWithTimers
{
    public const string VcpuDispatcherId = "actorvm.vcpu-dispatcher";
    public const string PinnedDispatcherId = "actorvm.vcpu-pinned-dispatcher";

    private readonly Machine _machine;
    private readonly VmOptions _options;
    private readonly TaskCompletionSource<VmResult> _result;
    private readonly HostTimer _timer;
    private readonly VcpuContext[] _vcpus;
    private readonly IActorRef[] _lapics;
    private readonly IActorRef[] _runLoops;
    private readonly ApicBus _bus;
    private readonly System.Diagnostics.Stopwatch _elapsed = new();
    private int _pausedAcks;
    private IActorRef? _pauseRequester;
    private bool _finished;
    private long _quiescentEpoch = -1;
    private static readonly TimeSpan QuiescencePoll = TimeSpan.FromMilliseconds(50);

    public VmActor(Machine machine, VmOptions options, TaskCompletionSource<VmResult> result, HostTimer timer, Action<IReadOnlyList<VcpuContext>>? created = null)
    {
        _machine = machine;
        _options = options;
        _result = result;
        _timer = timer;
        var trace = new Tracepoints(options.Trace, options.TraceLogger, machine.Clock);
        var n = machine.Cpus.Count;
        _vcpus = new VcpuContext[n];
        _lapics = new IActorRef[n];
        _runLoops = new IActorRef[n];
        var dispatcher = options.Dispatcher == VcpuDispatcher.Pinned ? PinnedDispatcherId : VcpuDispatcherId;
        _bus = new ApicBus(_vcpus, _lapics); // filled below, before any actor gets a message
        for (var i = 0; i < n; i++)
        {
            var ctx = _vcpus[i] = new VcpuContext(machine, i, options, trace) { Bus = _bus };
            // The LAPIC and run-loop actors share the vCPU dispatcher's threads with the slices: a
            // hand-over (exit → run loop → LAPIC → entry) then runs on the thread the slice just
            // left instead of waking a thread-pool thread that competes with the spinning slices
            // for the cores (a slowpath round trip went from ≈ 15-19 µs to ≈ 3-4 µs). With the
            // pinned dispatcher they stay on the shared one: one thread per vCPU is enough.
            _lapics[i] = Context.ActorOf(LapicActor.Props(ctx, Self, timer).WithDispatcher(VcpuDispatcherId), $"lapic-{i}");
            var vcpu = Context.ActorOf(VcpuActor.Props(ctx, _lapics[i]).WithDispatcher(dispatcher), $"vcpu-{i}");
            _runLoops[i] = Context.ActorOf(RunLoopActor.Props(ctx, vcpu, _lapics[i], Self).WithDispatcher(VcpuDispatcherId), $"runloop-{i}");
            ctx.Shared.RunLoop = _runLoops[i];
        }

        options.Observer?.Attach(_vcpus);
        created?.Invoke(_vcpus);

        Receive<StartVm>(_ =>
        {
            _elapsed.Start();
            if (options.StopWhenAllHalted)
            {
                Timers.StartPeriodicTimer("quiescence", CheckQuiescence.Instance, QuiescencePoll);
            }

            foreach (var r in _runLoops)
            {
                r.Tell(RunLoopProtocol.Start.Instance);
            }
        });
        Receive<SendIpi>(m => _bus.Send(m.Message, m.SourceAccepted ? m.Message.SourceVcpu : -1));
        Receive<DeviceInterrupt>(m => _bus.Send(m.Message, -1));
        AttachPlatform();
        Receive<VcpuShutdown>(m => Finish(m.Kind, m.Kind == VmExitKind.TripleFault ? 1 : 0, m.Detail));
        Receive<VcpuFailed>(m => Finish(VmExitKind.Error, 1, m.Detail));
        Receive<StopVm>(m => Finish(m.Kind, m.ExitCode, m.Detail));
        Receive<ChildFailed>(m => Finish(VmExitKind.Error, 1, $"actor {m.Child} failed: {m.Error}"));
        Receive<GetStatistics>(_ => Sender.Tell(Statistics()));
        Receive<CheckQuiescence>(_ => CheckHaltedForever());
        Receive<GetVcpuShared>(_ => Sender.Tell(_vcpus.Select(v => v.Shared).ToArray()));
        Receive<PauseVm>(_ =>
        {
            _pauseRequester = Sender;
            _pausedAcks = 0;
            foreach (var r in _runLoops)
            {
                r.Tell(RunLoopProtocol.Pause.Instance);
            }
        });
        Receive<RunLoopProtocol.Paused>(_ =>
        {
            if (++_pausedAcks == _runLoops.Length)
            {
                _pauseRequester?.Tell(VmPaused.Instance);
            }
        });
        Receive<ResumeVm>(_ =>
        {
            foreach (var r in _runLoops)
            {
                r.Tell(RunLoopProtocol.Resume.Instance);
            }
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="created">Called with the vCPUs' contexts once they exist (the host's stop line: <see cref="VmRunner"/>).</param>
    public static Props Props(Machine machine, VmOptions options, TaskCompletionSource<VmResult> result, HostTimer timer, Action<IReadOnlyList<VcpuContext>>? created = null) =>
        Akka.Actor.Props.Create(() => new VmActor(machine, options, result, timer, created));

    /// <summary>The shared state of each vCPU (tests and the stress checker observe it).</summary>
    public IReadOnlyList<VcpuContext> Vcpus => _vcpus;

    protected override SupervisorStrategy SupervisorStrategy()
    {
        var self = Self;
        return new OneForOneStrategy(ex =>
        {
            self.Tell(new ChildFailed("child", ex.GetType().Name + ": " + ex.Message));
            return Directive.Stop;
        });
    }

    private VmStatistics Statistics()
    {
        var per = _vcpus.Select(v => v.Counters.Snapshot(v.Id)).ToList();
        return new VmStatistics(VcpuStatistics.Sum(per), per);
    }

    /// <summary>The first outcome wins; every vCPU is told VM_DEAD (and kicked) so running slices end.</summary>
    private void Finish(VmExitKind kind, int exitCode, string detail)
    {
        if (_finished)
        {
            return;
        }

        _finished = true;
        foreach (var v in _vcpus)
        {
            v.Shared.MakeRequest(KvmRequest.VmDead);
            v.Shared.Kick();
        }

        _result.TrySetResult(new VmResult(kind, exitCode, detail, Statistics(), _elapsed.Elapsed, _timer.MaxLatenessMicroseconds));
    }

    private sealed record ChildFailed(string Child, string Error);

    private sealed record CheckQuiescence
    {
        public static CheckQuiescence Instance { get; } = new();
    }

    /// <summary>Every vCPU blocked, no timer armed, no wake-up since the previous poll: nothing can ever run again.</summary>
    private void CheckHaltedForever()
    {
        if (_vcpus.Any(v => !v.Shared.Blocked || v.Shared.TimerArmed) || DeviceTimerArmed)
        {
            _quiescentEpoch = -1;
            return;
        }

        var epoch = _vcpus.Sum(v => v.Shared.BlockEpoch);
        if (epoch == _quiescentEpoch)
        {
            Finish(VmExitKind.HaltedForever, 0, "every vCPU is halted with nothing that could wake it");
            return;
        }

        _quiescentEpoch = epoch;
    }
}
