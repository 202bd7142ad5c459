namespace ActorVm.Hardware.Apic;

/// <summary>
/// The LVT timer (SDM 11.5.4; KVM lapic.c "timer interface"). Time is guest TSC. The APIC bus
/// runs at 1 GHz (one bus cycle = 1 ns, KVM APIC_BUS_CYCLE_NS), so a count of TMICT at divisor d
/// lasts TMICT × d ns, converted to TSC ticks with <see cref="ApicConfig.TscHz"/> (rounded up so
/// the timer is never early). The owner arms its hv or sw backend at <see cref="TimerDeadline"/>
/// and calls <see cref="TimerExpired"/> when the guest TSC reaches it.
/// </summary>
public sealed partial class LocalApic
{
    private uint _tmict;
    private uint _tdcr;
    private ulong _periodNs;     // TMICT × divisor, before the periodic clamp; 0 = stopped
    private bool _armed;
    private ulong _target;       // guest TSC of the next expiry while armed
    private ulong _tscDeadline;  // IA32_TSC_DEADLINE as written (TSC-deadline mode)

    /// <summary>Expiries seen by <see cref="TimerExpired"/> (including coalesced and masked ones).</summary>
    public ulong TimerExpiries { get; private set; }

    /// <summary>Expiries that raised no new interrupt because the LVTT vector was still pending in IRR.</summary>
    public ulong TimerCoalesced { get; private set; }

    /// <summary>Expiries that raised nothing because LVTT was masked (or the APIC hardware-disabled).</summary>
    public ulong TimerMasked { get; private set; }

    /// <summary>Minimum periodic period in ns (KVM min_timer_period_us = 200).</summary>
    public static ulong MinPeriodicPeriodNs => (ulong)ApicConfig.MinPeriodicPeriod.Ticks * 100;

    public TimerMode TimerMode => (TimerMode)((_lvt[(int)LvtIndex.Timer] >> 17) & 3);

    /// <summary>TDCR divisor (SDM figure 11-10): n = (tdcr[1:0] | tdcr[3] &lt;&lt; 2) + 1, divisor = 1 &lt;&lt; (n &amp; 7); 0xB → 1.</summary>
    public static uint DivisorOf(uint tdcr) => 1u << (int)((((tdcr & 3) | ((tdcr & 8) >> 1)) + 1) & 7);

    public uint Divisor => DivisorOf(_tdcr);

    /// <summary>Guest TSC of the next expiry, or ulong.MaxValue when the timer is stopped.</summary>
    public ulong TimerDeadline => _armed ? _target : ulong.MaxValue;

    /// <summary>The period in ns actually used: TMICT × divisor, at least 200 µs in periodic mode.</summary>
    public ulong TimerPeriodNs => TimerMode == TimerMode.Periodic ? Math.Max(_periodNs, MinPeriodicPeriodNs) : _periodNs;

    /// <summary>IA32_TSC_DEADLINE as read: the armed deadline in TSC-deadline mode, else 0 (0 after the interrupt).</summary>
    public ulong TscDeadlineMsr => HardwareEnabled && TimerMode == TimerMode.TscDeadline ? _tscDeadline : 0;

    public ulong NsToTsc(ulong ns) => (ulong)(((UInt128)ns * Config.TscHz + 999_999_999) / 1_000_000_000);

    public ulong TscToNs(ulong ticks) => (ulong)((UInt128)ticks * 1_000_000_000 / Config.TscHz);

    private void ResetTimer()
    {
        _tmict = 0;
        _tdcr = 0;
        _periodNs = 0;
        _armed = false;
        _target = 0;
        _tscDeadline = 0;
    }

    /// <summary>
    /// TMCCT (KVM apic_get_tmcct): 0 in TSC-deadline mode or when stopped; otherwise the remaining
    /// bus cycles / divisor, rounded up so the count drops by one every divisor cycles and reaches
    /// 0 exactly at the expiry (KVM rounds down, which reads one less mid-tick). A one-shot count
    /// that reached 0 stays 0; a periodic count past its target (expiry not yet processed) has
    /// already reloaded and keeps counting down.
    /// </summary>
    private uint CurrentCount(ulong now)
    {
        if (TimerMode == TimerMode.TscDeadline || _tmict == 0 || !_armed)
        {
            return 0;
        }

        var period = TimerPeriodNs;
        ulong remainingNs;
        if (now < _target)
        {
            remainingNs = Math.Min(TscToNs(_target - now), period);
        }
        else if (TimerMode == TimerMode.Periodic)
        {
            remainingNs = period - (TscToNs(now - _target) % period);
        }
        else
        {
            return 0;
        }

        return (uint)Math.Min((remainingNs + Divisor - 1) / Divisor, _tmict);
    }

    /// <summary>TMICT write (KVM: cancel, store, start): ignored in TSC-deadline mode; 0 stops the timer.</summary>
    private ApicWriteEffects WriteTmict(uint value, ulong now)
    {
        if (TimerMode == TimerMode.TscDeadline)
        {
            return ApicWriteEffects.None;
        }

        _tmict = value;
        StartCountdown(now);
        return new ApicWriteEffects(TimerChanged: true);
    }

    private void StartCountdown(ulong now)
    {
        _periodNs = (ulong)_tmict * Divisor;
        _armed = _tmict != 0;
        _target = _armed ? now + NsToTsc(TimerPeriodNs) : 0;
    }

    /// <summary>
    /// TDCR write: bits 0, 1, 3 (KVM update_divide_count). A running count keeps its progress: the
    /// remaining time is rescaled to the new divisor (KVM update_target_expiration).
    /// </summary>
    private ApicWriteEffects WriteTdcr(uint value, ulong now)
    {
        var oldDivisor = Divisor;
        _tdcr = value & 0xB;
        if (!_armed || TimerMode == TimerMode.TscDeadline || Divisor == oldDivisor)
        {
            return ApicWriteEffects.None;
        }

        var remainingTsc = _target > now ? _target - now : 0;
        _periodNs = (ulong)_tmict * Divisor;
        _target = now + (ulong)((UInt128)remainingTsc * Divisor / oldDivisor);
        return new ApicWriteEffects(TimerChanged: true);
    }

    /// <summary>
    /// LVTT write (KVM apic_update_lvtt): moving into or out of TSC-deadline mode stops the timer and
    /// zeroes TMICT and the deadline; one-shot ↔ periodic keeps the running count (the mode is
    /// applied at the next expiry). The reserved mode 3 behaves as one-shot.
    /// </summary>
    private ApicWriteEffects WriteLvtTimer(uint value)
    {
        var oldMode = TimerMode;
        _lvt[(int)LvtIndex.Timer] = value;
        var newMode = TimerMode;
        if ((oldMode == TimerMode.TscDeadline) != (newMode == TimerMode.TscDeadline))
        {
            var wasArmed = _armed;
            _tmict = 0;
            _periodNs = 0;
            _tscDeadline = 0;
            _armed = false;
            return new ApicWriteEffects(TimerChanged: wasArmed);
        }

        return ApicWriteEffects.None;
    }

    /// <summary>
    /// WRMSR IA32_TSC_DEADLINE (SDM 11.5.4.1): ignored outside TSC-deadline mode (or when the APIC is
    /// hardware-disabled); 0 disarms; a deadline at or before <paramref name="now"/> fires at once.
    /// </summary>
    private ApicWriteEffects WriteTscDeadline(ulong value, ulong now)
    {
        if (!HardwareEnabled || TimerMode != TimerMode.TscDeadline)
        {
            return ApicWriteEffects.None;
        }

        _tscDeadline = value;
        _armed = value != 0;
        _target = value;
        var fired = _armed && value <= now && TimerExpired(now);
        return new ApicWriteEffects(EventNeeded: fired, TimerChanged: true);
    }

    /// <summary>
    /// The timer reached its deadline (KVM apic_timer_expired + kvm_inject_apic_timer_irqs, collapsed
    /// because this model injects straight into IRR). Stale calls (stopped, or now before the
    /// deadline) do nothing and return false. Otherwise the expiry is counted and LVTT is raised
    /// unless masked. <b>Coalescing rule:</b> if the LVTT vector is still pending in IRR the expiry
    /// is counted in <see cref="TimerCoalesced"/> and not duplicated — IRR holds one bit per vector,
    /// matching KVM, whose <c>pending</c> counter re-delivers into an IRR bit that is already set.
    /// Then: TSC-deadline mode disarms and IA32_TSC_DEADLINE reads 0; one-shot stops (TMCCT 0);
    /// periodic re-arms from the previous target (not from now) — if the owner is late by whole
    /// periods, the missed periods are counted as expiries and coalesced, and the next target is the
    /// first one after now. Returns true when IRR changed (the owner makes EVENT and kicks).
    /// </summary>
    public bool TimerExpired(ulong now)
    {
        if (!_armed || now < _target)
        {
            return false;
        }

        TimerExpiries++;
        var raised = InjectTimerInterrupt();
        switch (TimerMode)
        {
            case TimerMode.TscDeadline:
                _tscDeadline = 0;
                _armed = false;
                break;
            case TimerMode.Periodic:
                var period = Math.Max(NsToTsc(TimerPeriodNs), 1);
                _target += period;
                if (_target <= now)
                {
                    var missed = (now - _target) / period + 1;
                    _target += missed * period;
                    TimerExpiries += missed;
                    TimerCoalesced += missed;
                }

                break;
            default:
                _armed = false;
                break;
        }

        return raised;
    }

    private bool InjectTimerInterrupt()
    {
        var lvtt = _lvt[(int)LvtIndex.Timer];
        if (!HardwareEnabled || (lvtt & ApicBits.Masked) != 0)
        {
            TimerMasked++;
            return false;
        }

        if (IsIrrSet((byte)lvtt))
        {
            TimerCoalesced++;
            return false;
        }

        return RaiseLocalInterrupt(LvtIndex.Timer);
    }
}
