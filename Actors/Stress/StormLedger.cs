using ActorVm.Hardware;
using static ActorVm.Actors.Stress.StormLayout;

namespace ActorVm.Actors.Stress;

/// <summary>
/// The guests' own accounting, read from guest memory once the storm has drained: what was sent
/// and received per vCPU (and per sender→target pair up to <see cref="StormLayout.PairLimit"/>
/// vCPUs), so every lost or duplicated interrupt is counted exactly.
/// </summary>
public sealed record StormLedger(long Sent, long Received, long Lost, long Duplicates, IReadOnlyList<string> Errors, IReadOnlyList<int> Suspects)
{
    /// <summary>How many vCPUs report "done" when the storm has drained.</summary>
    public static int ExpectedDone(StormKind kind, int vcpus) => kind switch
    {
        StormKind.PingPong => (vcpus / 2) + (vcpus % 2),
        StormKind.InitSipi or StormKind.SipiRace => 1,
        _ => vcpus,
    };

    /// <summary>Every vCPU that reports finished has, and nothing is in flight (no IPI slot still claimed).</summary>
    public static bool Drained(Machine m, StormKind kind, int vcpus)
    {
        if (m.Memory.Read32(Globals + Done) < ExpectedDone(kind, vcpus))
        {
            return false;
        }

        if (kind is StormKind.AllToAll or StormKind.Mixed)
        {
            for (var t = 0; t < vcpus; t++)
            {
                if (m.Memory.Read16(Slots + ((ulong)t * 2)) != 0)
                {
                    return false;
                }
            }
        }

        if (kind == StormKind.PingPong)
        {
            for (var i = 0; i + 1 < vcpus; i += 2)
            {
                if (m.Memory.Read32(Record(i, StormLayout.Received)) != m.Memory.Read32(Record(i + 1, StormLayout.Sent)))
                {
                    return false;
                }
            }
        }

        return true;
    }

    public static StormLedger Read(Machine m, StormKind kind, int vcpus)
    {
        var errors = new List<string>();
        var suspects = new List<int>();
        long sent = 0, received = 0, lost = 0, duplicates = 0;
        uint G(int field) => m.Memory.Read32(Globals + (ulong)field);
        uint R(int vcpu, int field) => m.Memory.Read32(Record(vcpu, field));

        void Pair(string what, long s, long r, int receiver = -1)
        {
            sent += s;
            received += r;
            if (r != s && receiver >= 0)
            {
                suspects.Add(receiver);
            }

            if (r < s)
            {
                lost += s - r;
                errors.Add($"{what}: sent {s}, received {r}");
            }
            else if (r > s)
            {
                duplicates += r - s;
                errors.Add($"{what}: sent {s}, received {r} (duplicated)");
            }
        }

        if (G(StormLayout.Duplicates) is var dup and > 0)
        {
            duplicates += dup;
            errors.Add($"{dup} IPIs arrived at a free slot (nobody sent them)");
        }

        if (G(Stray) is var stray and > 0)
        {
            duplicates += stray;
            errors.Add($"{stray} interrupts on vectors no one sent");
        }

        if (G(TscDeadlineNotCleared) is var tsc and > 0)
        {
            errors.Add($"{tsc} timer IRQs found IA32_TSC_DEADLINE not yet 0 (I10)");
        }

        switch (kind)
        {
            case StormKind.AllToAll:
            case StormKind.Mixed:
                long totalSent = 0, totalReceived = 0;
                for (var v = 0; v < vcpus; v++)
                {
                    totalSent += R(v, StormLayout.Sent);
                    totalReceived += R(v, StormLayout.Received);
                }

                Pair("fixed IPIs (all vCPUs)", totalSent, totalReceived);
                if (vcpus <= PairLimit)
                {
                    for (var s = 0; s < vcpus; s++)
                    {
                        for (var t = 0; t < vcpus; t++)
                        {
                            var st = m.Memory.Read32(SentTo(s, t));
                            var rf = m.Memory.Read32(ReceivedFrom(t, s));
                            if (st != rf)
                            {
                                suspects.Add(t);
                                errors.Add($"vCPU {s} sent {st} IPIs to vCPU {t}, which received {rf} from it");
                            }
                        }
                    }
                }

                if (kind == StormKind.Mixed)
                {
                    for (var v = 0; v < vcpus; v++)
                    {
                        Pair($"vCPU {v} TSC-deadline timers", R(v, Armed), R(v, Fired), v);
                    }
                }

                break;
            case StormKind.SelfIpi:
            case StormKind.SelfIpiKick:
                for (var v = 0; v < vcpus; v++)
                {
                    Pair($"vCPU {v} self-IPIs", R(v, StormLayout.Sent), R(v, StormLayout.Received), v);
                    if (R(v, Armed) != R(v, Fired))
                    {
                        errors.Add($"vCPU {v}: {R(v, Armed)} WRMSRs to an unknown MSR, {R(v, Fired)} #GPs delivered");
                        suspects.Add(v);
                    }
                }

                break;
            case StormKind.Timers:
                for (var v = 0; v < vcpus; v++)
                {
                    Pair($"vCPU {v} TSC-deadline timers", R(v, Armed), R(v, Fired), v);
                }

                break;
            case StormKind.PingPong:
                for (var i = 0; i + 1 < vcpus; i += 2)
                {
                    Pair($"pings {i}→{i + 1}", R(i, StormLayout.Sent), R(i + 1, StormLayout.Received), i + 1);
                    Pair($"pongs {i + 1}→{i}", R(i + 1, StormLayout.Sent), R(i, StormLayout.Received), i);
                }

                break;
            case StormKind.Periodic:
                // SDM 11.5.4 / KVM min_timer_period_us: k ticks need at least (k-1) periods after t0.
                var minPeriod = (ulong)(m.Clock.Frequency * 200e-6);
                for (var v = 0; v < vcpus; v++)
                {
                    var ticks = R(v, Fired);
                    received += ticks;
                    if (ticks == 0)
                    {
                        lost++;
                        suspects.Add(v);
                        errors.Add($"vCPU {v}: no periodic tick at all");
                        continue;
                    }

                    var t0 = m.Memory.Read64(TickTimes + ((ulong)v * 16));
                    var last = m.Memory.Read64(TickTimes + ((ulong)v * 16) + 8);
                    if ((ulong)(ticks - 1) * minPeriod > last - t0)
                    {
                        duplicates++;
                        suspects.Add(v);
                        errors.Add($"vCPU {v}: {ticks} periodic ticks in {(last - t0) / (m.Clock.Frequency / 1e6):F0} µs, faster than the 200 µs minimum period (I10)");
                    }
                }

                sent = received;
                break;
            case StormKind.InitSipi:
                for (var v = 1; v < vcpus; v++)
                {
                    // The first boot comes from the BSP's broadcast INIT/SIPI, the rest from the cycle.
                    Pair($"AP {v} INIT/SIPI boots", R(v, StormLayout.Sent) + 1, R(v, StormLayout.Received), v);
                }

                break;
            case StormKind.SipiRace:
                for (var v = 1; v < vcpus; v++)
                {
                    uint X(int field) => m.Memory.Read32(RaceRecord(v, field));

                    // Every race ends with SIPI 8 after the last INIT: exactly one boot from page 8
                    // per race; page 9 at most once per race (when it was taken before the second
                    // INIT); page 7 only for the broadcast at start (every later SIPI 7 is sent to
                    // a running or halted AP and must be dropped, I14).
                    Pair($"AP {v} races (boots via SIPI 8)", R(v, StormLayout.Sent), R(v, StormLayout.Received), v);
                    Pair($"AP {v} NMIs", X(NmisSent), R(v, Fired), v);
                    if (X(BootsPage7) != 1)
                    {
                        duplicates += Math.Max(0, X(BootsPage7) - 1);
                        errors.Add($"AP {v} booted {X(BootsPage7)} times via SIPI 7: only the first broadcast may start it (SIPI outside INIT_RECEIVED is dropped, I14)");
                        suspects.Add(v);
                    }

                    if (X(BootsPage9) > R(v, StormLayout.Sent))
                    {
                        errors.Add($"AP {v} booted {X(BootsPage9)} times via SIPI 9 in {R(v, StormLayout.Sent)} races");
                        suspects.Add(v);
                    }

                    // I12: HLT with IF=0 ends only for NMI, INIT or SIPI (KVM counts a pending SIPI
                    // as an event even when it drops it); the pending fixed IRQ must never end it.
                    // Each event ends at most one HLT: it is injected or accepted by the run loop
                    // before the guest runs on, and a HLT the fastpath sees it for waits until then
                    // (VcpuActor.HltFastpath). An INIT ends a HLT too, but restarts the AP before
                    // it counts, so the guest's count is NMIs plus stray SIPIs at most. The
                    // checker's "HLT IF=0" counts the same HLTs per event (I12 in
                    // InvariantChecker.InitSipi), plus those INIT ended, so it is the larger.
                    if (R(v, Armed) > X(NmisSent) + X(SipisDropped))
                    {
                        errors.Add($"AP {v} left HLT with IF=0 {R(v, Armed)} times for {X(NmisSent)} NMIs and {X(SipisDropped)} SIPIs: a fixed IRQ ended a HLT, or one event several (I12)");
                        suspects.Add(v);
                    }
                }

                break;
        }

        return new StormLedger(sent, received, lost, duplicates, errors, suspects);
    }
}
