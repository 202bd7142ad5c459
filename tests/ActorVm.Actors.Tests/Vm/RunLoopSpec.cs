using ActorVm.Actors.Stats;
using ActorVm.Actors.Vcpu;
using ActorVm.Actors.Vm;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.Vm;

/// <summary>The run loop with its LAPIC and vCPU actors, driving real-mode guests.</summary>
public sealed class RunLoopSpec : TestKit
{
    public RunLoopSpec() : base(VmRunner.DispatcherConfig)
    {
    }

    private static void Spin(Assembler a)
    {
        var l = a.CreateLabel();
        a.Label(ref l);
        a.add(ax, 1);
        a.jmp(l);
    }

    private static void DebugExit(Assembler a)
    {
        a.mov(dx, ActorVm.Hardware.Devices.DebugExit.DefaultPort);
        a.mov(eax, 0);
        a.@out(dx, eax);
        var l = a.CreateLabel();
        a.Label(ref l);
        a.cli();
        a.hlt();
        a.jmp(l);
    }

    /// <summary>IVT handlers: NMI → OUT 0x82; vector 0x40 → OUT 0x81, EOI.</summary>
    private static void Handlers(Hardware.Machine m)
    {
        TestGuest.Handler(m, 2, 0x3000, a => { a.@out(0x82, al); a.iret(); });
        TestGuest.Handler(m, 0x40, 0x3100, a => { a.@out(0x81, al); a.Eoi(); a.iret(); });
    }

    private static void AssertNoWarnings(VcpuStatistics s) => Assert.Equal(new WarnStatistics(0, 0, 0), s.Warnings);

    [Fact(DisplayName = "I12: HLT with IF=1 blocks without a thread and wakes on a fixed IPI, which is injected")]
    public void HaltWakesOnIpi()
    {
        var rig = new VmRig(Sys, 1, m =>
        {
            Handlers(m);
            TestGuest.LoadReal(m, 0, a => { a.EnableX2Apic(bsp: true); a.sti(); a.hlt(); a.@out(0x80, al); DebugExit(a); });
        }).Start();
        var shared = () => rig.Stats();
        rig.WaitUntil(() => shared().Halts >= 1 && rig.Ports.Writes.Count == 0, "the vCPU halted");
        rig.Interrupt(DeliveryMode.Fixed, 0x40);

        var result = rig.Await();
        Assert.Equal(VmExitKind.Shutdown, result.Kind);
        Assert.Equal([0x81, 0x80], rig.Ports.Writes.Select(w => (int)w.Port));
        var s = result.Statistics.PerVcpu[0];
        Assert.True(s.Wakeups >= 1);
        Assert.Equal(1, s.Injections.Irqs);
        Assert.Contains(rig.Trace.Lines, l => l.EndsWith("kvm_inj_virq: IRQ 0x40", StringComparison.Ordinal));
        Assert.Contains(rig.Trace.Lines, l => l.EndsWith("kvm_apic_accept_irq: apicid 0 vec 64 (Fixed|edge)", StringComparison.Ordinal));
        Assert.Contains(rig.Trace.Lines, l => l.EndsWith("kvm_eoi: apicid 0 vector 64", StringComparison.Ordinal));
        AssertNoWarnings(s);
    }

    [Fact(DisplayName = "I12: HLT with IF=0 does not wake on a fixed IRQ; an NMI wakes it")]
    public void HaltWithInterruptsOffIgnoresFixedIrq()
    {
        var rig = new VmRig(Sys, 1, m =>
        {
            Handlers(m);
            TestGuest.LoadReal(m, 0, a => { a.EnableX2Apic(bsp: true); a.cli(); a.hlt(); a.@out(0x80, al); DebugExit(a); });
        }).Start();
        rig.WaitUntil(() => rig.Stats().Halts >= 1, "the vCPU halted");
        rig.Interrupt(DeliveryMode.Fixed, 0x40);
        Thread.Sleep(300);
        Assert.Empty(rig.Ports.Writes);
        Assert.Equal(0, rig.Stats().Wakeups);

        rig.Interrupt(DeliveryMode.Nmi, 0);
        var result = rig.Await();
        Assert.Equal([0x82, 0x80], rig.Ports.Writes.Select(w => (int)w.Port));
        Assert.Equal(1, result.Statistics.PerVcpu[0].Injections.Nmis);
        Assert.Equal(0, result.Statistics.PerVcpu[0].Injections.Irqs);
        AssertNoWarnings(result.Statistics.PerVcpu[0]);
    }

    [Fact(DisplayName = "I1: a request made from another thread while the guest spins is serviced promptly, every time")]
    public void RequestFromAnotherThreadIsServiced()
    {
        var observer = new I2Checker();
        var rig = new VmRig(Sys, 1, m => TestGuest.LoadReal(m, 0, Spin), new VmOptions { SliceInstructions = 200_000, Observer = observer }).Start();
        rig.WaitUntil(() => rig.Stats().InstructionsRetired > 0, "the guest runs");
        var shared = rig.Shared();
        for (var i = 1; i <= 20; i++)
        {
            var before = rig.Stats().InstructionsRetired;
            shared[0].MakeRequest(KvmRequest.TlbFlush);
            shared[0].Kick();
            var n = i;
            rig.WaitUntil(() => rig.Stats().RequestsServiced.GetValueOrDefault("TLB_FLUSH") >= n, $"TLB_FLUSH #{n} serviced");
            Assert.False(shared[0].TestRequest(KvmRequest.TlbFlush) && rig.Stats().RequestsServiced.GetValueOrDefault("TLB_FLUSH") < n);
        }

        rig.Vm.Tell(new VmProtocol.StopVm(VmExitKind.Shutdown, 0, "test done"));
        var result = rig.Await();
        Assert.Equal(20, result.Statistics.PerVcpu[0].RequestsServiced["TLB_FLUSH"]);
        Assert.True(observer.Entries > 0);
        Assert.Equal(0, observer.Violations);
        // Not every kick forces an exit: one that lands while the vCPU is between entries finds
        // it OUTSIDE_GUEST_MODE, and the request is seen at E1/E7 instead (KVM behaves the same).
        AssertNoWarnings(result.Statistics.PerVcpu[0]);
    }

    [Theory(DisplayName = "§5 -EBUSY: an NMI injected with an IRQ waiting forces an immediate exit; I6/I8/I9 hold")]
    [InlineData(ImmediateExitMethod.PreemptionTimer)]
    [InlineData(ImmediateExitMethod.SelfIpi)]
    public void InjectionBusyForcesImmediateExit(ImmediateExitMethod method)
    {
        var rig = new VmRig(Sys, 1, m =>
        {
            Handlers(m);
            TestGuest.LoadReal(m, 0, a => { a.EnableX2Apic(bsp: true); a.sti(); a.hlt(); a.@out(0x80, al); DebugExit(a); });
        }, new VmOptions { ImmediateExit = method }).Start();
        rig.WaitUntil(() => rig.Stats().Halts >= 1, "the vCPU halted");
        rig.Pause();

        var shared = rig.Shared()[0];
        rig.Interrupt(DeliveryMode.Nmi, 0);
        rig.Interrupt(DeliveryMode.Fixed, 0x40);
        // The fixed IPI is posted (PIR) and merged into IRR at the LAPIC's next turn: pending either way.
        rig.WaitUntil(() => shared.NmiQueued == 1 && shared.InterruptPending && Math.Max(shared.HighestDeliverable, shared.HighestPosted) == 0x40, "both events are pending");
        rig.Vm.Tell(VmProtocol.ResumeVm.Instance);

        var result = rig.Await();
        Assert.Equal(VmExitKind.Shutdown, result.Kind);
        Assert.Equal([0x82, 0x81, 0x80], rig.Ports.Writes.Select(w => (int)w.Port));
        var s = result.Statistics.PerVcpu[0];
        var forced = s.ForcedEntries[method.ToString()];
        Assert.True(forced.Count >= 1, "the -EBUSY path forced an entry");
        var immediate = rig.Trace.Lines.Where(l => l.Contains("kvm_entry:", StringComparison.Ordinal) && l.EndsWith("[immediate exit]", StringComparison.Ordinal)).ToList();
        Assert.Equal(forced.Count, immediate.Count);
        if (method == ImmediateExitMethod.PreemptionTimer)
        {
            Assert.Equal(forced.Count, forced.LeakHistogram[0]);
            Assert.Equal(forced.Count, s.FastpathByHandler["PreemptionTimer"]["ExitHandled"]);
            Assert.False(s.SlowpathByReason.ContainsKey("PREEMPTION_TIMER"));
        }
        else
        {
            // The self-IPI lands asynchronously: the forced entry may end on the IPI (exit 1) or
            // on whatever the leaked guest instructions ran into first (here the handler's OUT).
            Assert.Equal(forced.Count, forced.LeakHistogram.Sum());
            Assert.False(s.FastpathByHandler.ContainsKey("PreemptionTimer"));
        }

        AssertNoWarnings(s);
    }

    [Fact(DisplayName = "A triple fault ends the VM with KVM_EXIT_SHUTDOWN")]
    public void TripleFaultShutsDown()
    {
        var rig = new VmRig(Sys, 1, m =>
        {
            TestGuest.LoadReal(m, 0, a => { a.@int(3); a.hlt(); });
            m.Cpus[0].Idtr = new DescriptorTable { Limit = 0 };
        }).Start();
        var result = rig.Await();
        Assert.Equal(VmExitKind.TripleFault, result.Kind);
        Assert.Equal(1, result.Statistics.PerVcpu[0].SlowpathByReason["TRIPLE_FAULT"]);
    }

    [Fact(DisplayName = "SMP: the BSP starts an AP with INIT/SIPI (I14); the AP's fixed IPI wakes the BSP")]
    public void InitSipiAndIpi()
    {
        var rig = new VmRig(Sys, 2, m =>
        {
            Handlers(m);
            TestGuest.LoadReal(m, 0, a =>
            {
                a.EnableX2Apic(bsp: true);
                a.Wrmsr(0x830, (1UL << 32) | 0x4500); // INIT → APIC 1
                a.Wrmsr(0x830, (1UL << 32) | 0x4602); // SIPI vector 2 → CS 0x200, IP 0
                a.sti();
                a.hlt();
                a.@out(0x80, al);
                DebugExit(a);
            });
            m.Memory.WriteBytes(0x2000, TestGuest.Assemble16(0, a =>
            {
                a.EnableX2Apic(bsp: false);
                a.@out(0x83, al);
                a.Wrmsr(0x830, 0x4040); // fixed vector 0x40 → APIC 0
                a.cli();
                a.hlt();
            }));
        }).Start();

        var result = rig.Await();
        Assert.Equal(VmExitKind.Shutdown, result.Kind);
        var ports = rig.Ports.Writes.Select(w => (int)w.Port).ToList();
        Assert.Equal([0x83, 0x81, 0x80], ports);
        Assert.Equal(1, result.Statistics.PerVcpu[0].Injections.Irqs);
        Assert.Contains(rig.Trace.Lines, l => l.EndsWith("kvm_apic_ipi: dst 1 vec 2 (SIPI|physical|assert|edge|dst)", StringComparison.Ordinal));
        Assert.True(result.Statistics.PerVcpu[1].InstructionsRetired > 0);
        AssertNoWarnings(result.Statistics.Total);
    }

    [Fact(DisplayName = "I13: self-IPIs (SELF_IPI MSR and ICR shorthand self) reach only the sender, once each")]
    public void SelfIpisReachOnlyTheSender()
    {
        var rig = new VmRig(Sys, 2, m =>
        {
            TestGuest.Handler(m, 0x50, 0x3000, a => { a.@out(0x85, al); a.Eoi(); a.iret(); });
            TestGuest.LoadReal(m, 0, a =>
            {
                a.EnableX2Apic(bsp: true);
                a.sti();
                a.Wrmsr(0x83F, 0x50);          // SELF_IPI
                a.nop();
                a.Wrmsr(0x830, (1 << 18) | 0x4050); // ICR, shorthand self
                a.nop();
                a.@out(0x80, al);
                DebugExit(a);
            });
        }).Start();

        var result = rig.Await();
        Assert.Equal([0x85, 0x85, 0x80], rig.Ports.Writes.Select(w => (int)w.Port));
        Assert.Equal(2, result.Statistics.PerVcpu[0].Injections.Irqs);
        Assert.Equal(0, result.Statistics.PerVcpu[1].Injections.Irqs);
        Assert.Equal(1, result.Statistics.PerVcpu[0].FastpathByHandler["X2ApicIcr"]["ReenterGuest"]);
    }

    /// <summary>I2 as the stress checker will see it: an entry must never pass E7 with a request or EXITING seen.</summary>
    private sealed class I2Checker : IRunLoopObserver
    {
        private int _entries;
        private int _violations;

        public int Entries => Volatile.Read(ref _entries);

        public int Violations => Volatile.Read(ref _violations);

        public void Entry(int vcpu, long requestsAtCheck, int modeAtCheck, bool forced, bool reentry)
        {
            Interlocked.Increment(ref _entries);
            if (requestsAtCheck != 0 || modeAtCheck == ModeWord.ExitingGuestMode)
            {
                Interlocked.Increment(ref _violations);
            }
        }

        public void Exit(int vcpu, in VmExit exit, FastpathResult fastpath, bool forced)
        {
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

        public void BlockChanged(int vcpu, bool blocked)
        {
        }
    }
}
