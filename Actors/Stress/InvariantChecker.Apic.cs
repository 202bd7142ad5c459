using System.Diagnostics;
using ActorVm.Actors.Vcpu;
using ActorVm.Hardware.Apic;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Stress;

/// <summary>
/// I11 (priority, acknowledge, EOI) from the LAPIC actor's snapshots, and I13 (a self-IPI
/// reaches only its sender, exactly once) from the IPI hooks of <see cref="Lapic.IApicEventListener"/>.
/// </summary>
public sealed partial class InvariantChecker
{
    /// <summary>Per vCPU v: [2v] self-IPIs sent, [2v + 1] self-IPIs its LAPIC accepted.</summary>
    private long[] _selfIpis = [];

    /// <summary>Self-IPIs (ICR self shorthand or SELF_IPI) the checker saw sent.</summary>
    public long SelfIpisSent
    {
        get
        {
            long sum = 0;
            for (var i = 0; i < _selfIpis.Length; i += 2)
            {
                sum += Interlocked.Read(ref _selfIpis[i]);
            }

            return sum;
        }
    }

    public void Acknowledged(int vcpu, ApicSnapshot before, int vector)
    {
        var t = Record(vcpu, "ack", vector, before.Ppr);
        Interlocked.Increment(ref _acknowledges);

        // I11: INTA takes the highest IRR vector whose priority class is above PPR's class
        // (SDM 11.8.3.1, 11.8.4; KVM apic_has_interrupt_for_ppr), computed here from the raw bits.
        var expected = before.Deliverable;
        if (vector != expected)
        {
            Report("I11", vcpu, $"acknowledged {Vector(vector)} where the highest IRR vector above PPR is {Vector(expected)} ({before})");
        }

        // I11: no vector is in service twice.
        if (vector >= 0 && before.InService(vector))
        {
            Report("I11", vcpu, $"vector 0x{vector:x} acknowledged while already in service ({before})");
        }

        if (vector >= 0)
        {
            Volatile.Write(ref t.Acked, vector);
        }
    }

    public void EndOfInterrupt(int vcpu, ApicSnapshot before, ApicSnapshot after)
    {
        var highest = before.HighestIsr;
        Record(vcpu, "eoi", highest, after.HighestIsr);
        Interlocked.Increment(ref _eois);

        // I11: EOI clears the highest ISR bit and nothing else (SDM 11.8.5; KVM apic_set_eoi).
        for (var w = 0; w < 4; w++)
        {
            var cleared = highest >= 0 && highest >> 6 == w ? before.Isr[w] & ~(1UL << (highest & 63)) : before.Isr[w];
            if (after.Isr[w] != cleared)
            {
                Report("I11", vcpu, $"EOI with highest ISR {Vector(highest)} left ISR {after} (before: {before})");
                return;
            }
        }
    }

    public void InterruptWindowAtEntry(int vcpu, bool irqWindow, EventInjection? injection, bool forced)
    {
        // A forced entry exits at once and re-evaluates (kvm_check_and_inject_events returned
        // -EBUSY), so it needs no window.
        var cpu = _vcpus[vcpu].Cpu;
        var shared = _vcpus[vcpu].Shared;
        var pending = shared.HighestDeliverable;
        if (forced || (cpu.IF && !cpu.InterruptShadow && injection is null) || pending < 0)
        {
            return;
        }

        // I11: an IRQ that IF=0, a shadow or another injection keeps out must be left with an
        // interrupt-window request (enable_irq_window).
        Interlocked.Increment(ref _windowChecks);
        if (irqWindow)
        {
            return;
        }

        // The LAPIC publishes a new vector, then makes EVENT, then kicks: a vector published
        // after this entry's E7 is answered by that request or kick, so give it the stall bound
        // to show up before calling the window missing.
        var until = Stopwatch.GetTimestamp() + _stallTicks;
        while (!shared.TestRequest(KvmRequest.Event) && shared.Mode.Read() != ModeWord.ExitingGuestMode)
        {
            if (Stopwatch.GetTimestamp() > until)
            {
                Report("I11", vcpu, $"IRQ 0x{pending:x} pending with IF={(cpu.IF ? 1 : 0)}, shadow={cpu.InterruptShadow}, injecting {injection?.ToString() ?? "nothing"}, and the entry requests no interrupt window");
                return;
            }

            Thread.SpinWait(20);
        }
    }

    /// <summary>I11: the IRQ the run loop injects is the one the LAPIC acknowledged for it.</summary>
    private void CheckInjectedVector(int vcpu, Track t, EventInjection injection)
    {
        if (injection.Type != EventType.ExternalInterrupt)
        {
            return;
        }

        // No acknowledged vector: a re-injection after a cancelled entry, or ExtINT from the PIC.
        var acked = Interlocked.Exchange(ref t.Acked, -1);
        if (acked >= 0 && acked != injection.Vector)
        {
            Report("I11", vcpu, $"injected IRQ 0x{injection.Vector:x} but the LAPIC acknowledged 0x{acked:x}");
        }
    }

    /// <summary>I11 (and I1 for IRQs): a vector moved IRR→ISR must be injected by the next entry, not dropped.</summary>
    private void CheckAckConsumed(int vcpu, Track t)
    {
        var acked = Interlocked.Exchange(ref t.Acked, -1);
        if (acked >= 0)
        {
            Report("I11", vcpu, $"vector 0x{acked:x} acknowledged (IRR→ISR) but the entry injects nothing: the IRQ is lost");
        }
    }

    // ---- I13 ------------------------------------------------------------------------------------

    public void IpiSent(int vcpu, InterruptMessage message)
    {
        Record(vcpu, "ipi-sent", message.Vector, (long)message.Shorthand);
        if (message.Shorthand == Shorthand.Self)
        {
            Interlocked.Increment(ref _selfIpis[2 * vcpu]);
        }
    }

    public void IpiAccepted(int vcpu, InterruptMessage message)
    {
        Record(vcpu, "ipi-accepted", message.Vector, message.SourceVcpu);
        if (message.Shorthand != Shorthand.Self)
        {
            return;
        }

        // I13: a self-IPI reaches only the sender...
        if (message.SourceVcpu != vcpu)
        {
            Report("I13", vcpu, $"self-IPI 0x{message.Vector:x} of vCPU {message.SourceVcpu} accepted by vCPU {vcpu}");
            return;
        }

        // ...exactly once: the sender's LAPIC accepts it in the same turn as the send, so the
        // accepted count can never run ahead of the sent count.
        var accepted = Interlocked.Increment(ref _selfIpis[(2 * vcpu) + 1]);
        if (accepted > Interlocked.Read(ref _selfIpis[2 * vcpu]))
        {
            Report("I13", vcpu, $"self-IPI 0x{message.Vector:x} accepted {accepted} times for {Interlocked.Read(ref _selfIpis[2 * vcpu])} sent");
        }
    }

    public void TimerFired(int vcpu) => Record(vcpu, "timer", 0, 0);

    /// <summary>I13's "at least once": after the VM has ended, every self-IPI sent was accepted.</summary>
    private void CheckSelfIpisBalanced()
    {
        for (var v = 0; v < _tracks.Length; v++)
        {
            var (sent, accepted) = (Interlocked.Read(ref _selfIpis[2 * v]), Interlocked.Read(ref _selfIpis[(2 * v) + 1]));
            if (sent != accepted)
            {
                Report("I13", v, $"{sent} self-IPIs sent, {accepted} accepted by the sender's LAPIC");
            }
        }
    }

    private static string Vector(int v) => v < 0 ? "none" : $"0x{v:x}";
}
