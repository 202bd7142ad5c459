using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests.Smp;

/// <summary>
/// timer: the BSP programs its LAPIC timer (vector 0x30) in one-shot, periodic or TSC-deadline
/// mode (SDM 11.5.4) for <c>count</c> expiries <c>periodUs</c> apart, halting in between. The
/// handler stamps RDTSC; the guest computes each expiry's lateness against the TSC value at which
/// it was due (taken before arming, so lateness is never negative unless the timer fires early,
/// which fails the run), prints the worst in microseconds and, with <c>maxLatenessUs</c> &gt; 0,
/// fails above it. The APIC timer counts 1 ns bus cycles at divide-by-1 (KVM APIC_BUS_CYCLE_NS).
/// </summary>
public static class TimerProgram
{
    public static readonly string[] Modes = ["oneshot", "periodic", "tsc-deadline"];

    private const uint Fired = SmpKernel.DataAddress, Stamp = Fired + 8, Due = Fired + 0x10, MaxLate = Fired + 0x18;
    private const byte Vector = 0x30;

    public static GuestProgram Program { get; } = new("timer", "LAPIC timer in one-shot, periodic or TSC-deadline mode: `count` expiries, lateness measured by the guest with RDTSC", _ => Build(new GuestBuildContext(1, GuestApicMode.X2Apic, 2_000_000_000, new Dictionary<string, string> { ["mode"] = "oneshot", ["count"] = "20", ["periodUs"] = "500", ["maxLatenessUs"] = "0" })))
    {
        Parameters =
        [
            new GuestParameter("mode", "timer mode", "oneshot", Choices: Modes),
            new GuestParameter("count", "expiries", "20", 1, 1_000_000),
            new GuestParameter("periodUs", "time between expiries in µs (periodic: at least 200, KVM's min_timer_period_us)", "500", 1, 10_000_000),
            new GuestParameter("maxLatenessUs", "fail if an expiry is later than this (0: only report)", "0", 0, 10_000_000),
        ],
        BuildFor = Build,
    };

    public static byte[] Build(GuestBuildContext c)
    {
        var mode = c.Text("mode");
        var count = c.Int("count");
        var periodUs = (uint)c.Int("periodUs");
        if (mode == "periodic" && periodUs < 200)
        {
            throw new GuestArgumentException("periodUs: a periodic timer needs at least 200 µs (KVM clamps shorter periods)");
        }

        var tscPerUs = c.TscPerMicrosecond;
        var periodTsc = (ulong)periodUs * tscPerUs;
        var k = new SmpKernel(c.Vcpus, c.Apic);
        var a = k.A;
        k.Handler(Vector, x =>
        {
            x.rdtsc();
            x.mov(__dword_ptr[(int)Stamp], eax);
            x.mov(__dword_ptr[(int)Stamp + 4], edx);
            x.inc(__dword_ptr[(int)Fired]);
        });
        k.Boot(() => { });
        k.Code.Print($"timer: {mode}, {count} expiries every {periodUs} us\n");
        a.xor(edi, edi);
        k.Apic.WriteConst(ApicOps.TimerDivide, 0xB); // divide by 1

        var loop = a.CreateLabel();
        a.mov(esi, 1);
        switch (mode)
        {
            case "oneshot":
                k.Apic.WriteConst(ApicOps.LvtTimer, Vector);
                a.Label(ref loop);
                a.cli();
                DueFromNow(a, periodTsc);
                k.Apic.WriteConst(ApicOps.TimerInitialCount, periodUs * 1000);
                break;
            case "periodic":
                k.Apic.WriteConst(ApicOps.LvtTimer, Vector | (1u << 17));
                a.cli();
                DueFromNow(a, 0);
                k.Apic.WriteConst(ApicOps.TimerInitialCount, periodUs * 1000);
                a.Label(ref loop);
                a.add(__dword_ptr[(int)Due], (uint)periodTsc);
                a.adc(__dword_ptr[(int)Due + 4], (uint)(periodTsc >> 32));
                break;
            default:
                k.Apic.WriteConst(ApicOps.LvtTimer, Vector | (2u << 17));
                a.Label(ref loop);
                a.cli();
                DueFromNow(a, periodTsc);
                a.mov(ecx, ApicOps.TscDeadlineMsr);
                a.wrmsr(); // EDX:EAX = the deadline
                break;
        }

        var wait = a.CreateLabel();
        var fired = a.CreateLabel();
        a.Label(ref wait);
        a.cli();
        a.cmp(__dword_ptr[(int)Fired], esi);
        a.jae(fired);
        a.sti();
        a.hlt();
        a.jmp(wait);
        a.Label(ref fired);

        // lateness = stamp - due (64-bit); negative: fired early.
        var notEarly = a.CreateLabel();
        var fits = a.CreateLabel();
        var notMax = a.CreateLabel();
        a.mov(eax, __dword_ptr[(int)Stamp]);
        a.mov(edx, __dword_ptr[(int)Stamp + 4]);
        a.sub(eax, __dword_ptr[(int)Due]);
        a.sbb(edx, __dword_ptr[(int)Due + 4]);
        a.jns(notEarly);
        a.inc(edi);
        a.xor(eax, eax);
        a.xor(edx, edx);
        a.Label(ref notEarly);
        a.test(edx, edx);
        a.jz(fits);
        a.mov(eax, uint.MaxValue);
        a.Label(ref fits);
        a.cmp(eax, __dword_ptr[(int)MaxLate]);
        a.jbe(notMax);
        a.mov(__dword_ptr[(int)MaxLate], eax);
        a.Label(ref notMax);
        a.inc(esi);
        a.cmp(esi, count);
        a.jbe(loop);

        k.Apic.WriteConst(ApicOps.LvtTimer, 1u << 16); // masked
        k.Apic.WriteConst(ApicOps.TimerInitialCount, 0);
        a.mov(eax, __dword_ptr[(int)MaxLate]);
        a.xor(edx, edx);
        a.mov(ecx, tscPerUs);
        a.div(ecx);
        a.mov(__dword_ptr[(int)MaxLate], eax);
        if (c.Int("maxLatenessUs") is var limit and > 0)
        {
            var ok = a.CreateLabel();
            a.cmp(eax, (uint)limit);
            a.jbe(ok);
            a.inc(edi);
            a.Label(ref ok);
        }

        if (mode != "periodic")
        {
            k.ExpectEqual(__dword_ptr[(int)Fired], (uint)count);
        }

        k.Code.Print($"timer: {mode} max lateness ");
        a.mov(eax, __dword_ptr[(int)MaxLate]);
        k.PrintDecimalEax();
        k.Code.Print(" us\n");
        k.Verdict("timer");
        return k.Build(c.Format);
    }

    /// <summary>Due = RDTSC + <paramref name="ticks"/>; leaves the sum in EDX:EAX.</summary>
    private static void DueFromNow(Assembler a, ulong ticks)
    {
        a.rdtsc();
        a.add(eax, (uint)ticks);
        a.adc(edx, (uint)(ticks >> 32));
        a.mov(__dword_ptr[(int)Due], eax);
        a.mov(__dword_ptr[(int)Due + 4], edx);
    }
}
