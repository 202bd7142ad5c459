using ActorVm.Actors.Stats;
using ActorVm.Actors.Vm;
using ActorVm.Hardware.Devices;
using Akka.TestKit.Xunit2;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.Vm;

/// <summary>TSC-deadline timers through both backends, halted and busy (host clock, 2 GHz TSC).</summary>
public sealed class LapicTimerSpec : TestKit
{
    private const byte TimerVector = 0xEF;
    private const uint Delay = 40_000_000; // 20 ms at 2 GHz

    public LapicTimerSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    /// <summary>LVTT in TSC-deadline mode, deadline = now + 20 ms, then <paramref name="wait"/>; the handler writes port 0x84 and sets [0x500].</summary>
    private static VmRig Rig(Akka.Actor.ActorSystem sys, VmOptions options, Action<Assembler> wait) =>
        new VmRig(sys, 1, m =>
        {
            TestGuest.Handler(m, TimerVector, 0x3200, a =>
            {
                a.@out(0x84, al);
                a.mov(__byte_ptr[0x500], 1);
                a.Eoi();
                a.iret();
            });
            TestGuest.LoadReal(m, 0, a =>
            {
                a.EnableX2Apic(bsp: true);
                a.Wrmsr(0x832, (2u << 17) | TimerVector);
                a.rdtsc();
                a.add(eax, Delay);
                a.adc(edx, 0);
                a.mov(ecx, 0x6E0u);
                a.wrmsr();
                a.sti();
                wait(a);
                a.@out(0x80, al);
                a.mov(dx, DebugExit.DefaultPort);
                a.@out(dx, al);
                a.cli();
                a.hlt();
            });
        }, options).Start();

    [Theory(DisplayName = "I10: a TSC-deadline timer fires once and wakes a halted vCPU (hv backend switches to sw while blocked)")]
    [InlineData(TimerBackend.Hv)]
    [InlineData(TimerBackend.Sw)]
    public void DeadlineWakesHaltedVcpu(TimerBackend backend)
    {
        var rig = Rig(Sys, new VmOptions { Timer = backend }, a => a.hlt());
        var result = rig.Await();

        Assert.Equal(VmExitKind.Shutdown, result.Kind);
        Assert.Equal([0x84, 0x80], rig.Ports.Writes.Select(w => (int)w.Port));
        var s = result.Statistics.PerVcpu[0];
        Assert.Equal(1, s.Injections.Irqs);
        Assert.True(s.Halts >= 1 && s.Wakeups >= 1);
        if (backend == TimerBackend.Hv)
        {
            Assert.Equal(1, s.FastpathByHandler[nameof(FastpathHandler.TscDeadline)][nameof(FastpathResult.ReenterGuest)]);
            Assert.Contains(rig.Trace.Lines, l => l.EndsWith("kvm_hv_timer_state: vcpu_id 0 hv_timer 0", StringComparison.Ordinal));
        }
        else
        {
            Assert.False(s.FastpathByHandler.ContainsKey(nameof(FastpathHandler.TscDeadline)));
        }

        Assert.Equal(new WarnStatistics(0, 0, 0), s.Warnings);
    }

    [Fact(DisplayName = "hv timer while the guest busy-waits: expiry through the preemption-timer fastpath, no slowpath WARN")]
    public void DeadlineExpiresInsideTheSlice()
    {
        var rig = Rig(Sys, new VmOptions { Timer = TimerBackend.Hv }, a =>
        {
            var l = a.CreateLabel();
            a.Label(ref l);
            a.cmp(__byte_ptr[0x500], 0);
            a.je(l);
        });
        var result = rig.Await();

        Assert.Equal([0x84, 0x80], rig.Ports.Writes.Select(w => (int)w.Port));
        var s = result.Statistics.PerVcpu[0];
        Assert.Equal(1, s.Injections.Irqs);
        Assert.True(s.FastpathByHandler.ContainsKey(nameof(FastpathHandler.PreemptionTimer)), System.Text.Json.JsonSerializer.Serialize(s) + string.Join("\n", rig.Trace.Lines.Take(60)));
        Assert.True(s.FastpathByHandler[nameof(FastpathHandler.PreemptionTimer)][nameof(FastpathResult.ReenterGuest)] >= 1);
        Assert.False(s.SlowpathByReason.ContainsKey("PREEMPTION_TIMER"));
        Assert.Equal(new WarnStatistics(0, 0, 0), s.Warnings);
    }
}
