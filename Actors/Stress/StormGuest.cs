using ActorVm.Hardware;
using ActorVm.Hardware.X86;
using Iced.Intel;
using static ActorVm.Actors.Stress.StormLayout;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Stress;

/// <summary>
/// Builds a storm guest: real-mode code, assembled with Iced, that every vCPU runs (the BSP wakes
/// the APs with INIT/SIPI, all wait at a barrier, then run the storm until the host sets the stop
/// flag). Every handler and sender counts in the ledger (<see cref="StormLayout"/>), so a lost or
/// duplicated interrupt shows in the guest as well as in the checker.
/// <para>
/// Coalescing is excluded by construction rather than tolerated: a sender claims the target's
/// slot (LOCK CMPXCHG) before sending the fixed vector and the target's handler frees it, so at
/// most one IPI per target is in flight; self-IPI and ping-pong senders wait for their
/// acknowledgement; a TSC-deadline timer is re-armed only from its own handler. Every IRQ sent
/// must therefore be received exactly once (SDM 11.8.4: a second IRR set of a pending vector
/// would merge — it cannot happen here).
/// </para>
/// Registers kept for the whole run: ESI = own APIC ID, DS = globals, FS = own record, GS = slots,
/// ES = own pair row, SS:SP = own stack; with the xAPIC interface also EBP = the APIC page's
/// offset from DS (<see cref="StormApic"/>).
/// </summary>
public static class StormGuest
{
    public static void Load(Machine machine, StormKind kind, int vcpus, int seed, StormApicMode apicMode = StormApicMode.X2Apic)
    {
        var max = MaxVcpusFor(apicMode);
        if (vcpus < StormCatalog.MinimumVcpus(kind) || vcpus > max)
        {
            throw new ArgumentOutOfRangeException(nameof(vcpus), vcpus,
                $"storm {StormCatalog.Name(kind)} needs {StormCatalog.MinimumVcpus(kind)} to {max} vCPUs with {apicMode}");
        }

        var apic = new StormApic(apicMode);
        var a = new Assembler(16);
        var labels = new Handlers(a, apic);
        var common = a.CreateLabel("common");
        a.Label(ref common);
        Common(a, apic, vcpus);
        var rng = new Random(seed);
        switch (kind)
        {
            case StormKind.AllToAll:
                AllToAll(a, apic, labels, vcpus, mixed: false, rng);
                break;
            case StormKind.Mixed:
                AllToAll(a, apic, labels, vcpus, mixed: true, rng);
                break;
            case StormKind.SelfIpi:
            case StormKind.SelfIpiKick:
                SelfIpis(a, apic);
                break;
            case StormKind.Timers:
                Timers(a, apic, labels);
                break;
            case StormKind.PingPong:
                PingPong(a, apic, vcpus);
                break;
            case StormKind.InitSipi:
                InitSipi(a, apic, vcpus);
                break;
            case StormKind.SipiRace:
                SipiRace(a, apic, vcpus);
                break;
            case StormKind.Periodic:
                Periodic(a, apic);
                break;
        }

        labels.Emit(a, vcpus, TimerDelta(rng));
        var code = Assemble(a, StormLayout.Code, out var result);
        machine.Memory.WriteBytes(StormLayout.Code, code);

        if (apic.XApic)
        {
            // Unreal mode's GDT: null, then flat data (base 0, limit 4 GiB, present, writable).
            machine.Memory.Write16(StormApic.Gdtr, 15);
            machine.Memory.Write32(StormApic.Gdtr + 2, (uint)StormApic.Gdt);
            machine.Memory.Write64(StormApic.Gdt, 0);
            machine.Memory.Write64(StormApic.Gdt + 8, 0x00CF_9200_0000_FFFFUL);
        }

        // IVT: everything points at the stray handler (counted), then the storm's vectors.
        var stray = (uint)result.GetLabelRIP(labels.StrayHandler);
        for (var v = 0; v < 256; v++)
        {
            machine.Memory.Write32((ulong)v * 4, stray);
        }

        machine.Memory.Write32((ulong)IpiVector * 4, (uint)result.GetLabelRIP(labels.IpiHandler));
        machine.Memory.Write32((ulong)SelfVectorMsr * 4, (uint)result.GetLabelRIP(labels.CountHandler));
        machine.Memory.Write32((ulong)SelfVectorIcr * 4, (uint)result.GetLabelRIP(labels.CountHandler));
        machine.Memory.Write32((ulong)PingVector * 4, (uint)result.GetLabelRIP(labels.CountHandler));
        machine.Memory.Write32((ulong)TimerVector * 4, (uint)result.GetLabelRIP(labels.TimerHandler));
        machine.Memory.Write32((ulong)PeriodicVector * 4, (uint)result.GetLabelRIP(labels.TickHandler));
        machine.Memory.Write32(13 * 4, (uint)result.GetLabelRIP(labels.GpHandler));
        machine.Memory.Write32(2 * 4, (uint)result.GetLabelRIP(labels.NmiHandler));
        machine.Memory.Write32((ulong)SpuriousVector * 4, (uint)result.GetLabelRIP(labels.SpuriousHandler));

        // AP start page: a far jump to the common entry.
        var stub = new Assembler(16);
        stub.jmp(0, (uint)result.GetLabelRIP(common));
        machine.Memory.WriteBytes((ulong)SipiPage << 12, Assemble(stub, 0, out _));

        // sipi-race start pages: the same entry, BX saying which SIPI started the AP.
        foreach (var (page, marker) in new[] { (WinningSipiPage, 1), (OverriddenSipiPage, 2) })
        {
            var s = new Assembler(16);
            s.mov(bx, (ushort)marker);
            s.jmp(0, (uint)result.GetLabelRIP(common));
            machine.Memory.WriteBytes((ulong)page << 12, Assemble(s, 0, out _));
        }

        // The BSP starts at the common entry in real mode.
        var bsp = machine.Cpus[0];
        for (var s = 0; s < 6; s++)
        {
            bsp.Seg[s] = Segment.Real(0, s == (int)SegReg.CS ? (ushort)0x9B : (ushort)0x93);
        }

        bsp.Gpr[Cpu.RSP] = 0x7000;
        bsp.Rip = (ulong)result.GetLabelRIP(common);
        bsp.UpdateMode();
    }

    /// <summary>TSC ticks between a timer handler and the deadline it arms (the seed varies the rate).</summary>
    private static uint TimerDelta(Random rng) => (uint)rng.Next(2_000, 20_000);

    /// <summary>The largest storm each LAPIC interface can address (xAPIC: 8-bit physical IDs, 0xFF is broadcast).</summary>
    public static int MaxVcpusFor(StormApicMode mode) => mode == StormApicMode.XApic ? 255 : MaxVcpus;

    /// <summary>The LAPIC interface on, own segments and stack, count in, BSP wakes the APs, barrier.</summary>
    private static void Common(Assembler a, StormApic apic, int vcpus)
    {
        a.cli();
        apic.EnterUnrealMode(a);
        a.mov(ax, 0x1000);
        a.mov(ds, ax);
        apic.Enable(a);
        apic.Write(a, StormApic.Svr, 0x100u | SpuriousVector); // SVR: software-enabled
        apic.ReadIdToEsi(a); // APIC ID = vCPU index
        a.mov(ax, si);
        a.add(ax, 0x3000);
        a.mov(fs, ax);
        a.mov(ax, 0x4000);
        a.mov(gs, ax);
        a.mov(ax, si);
        a.shl(ax, 5);
        a.add(ax, 0x5000);
        a.mov(es, ax);
        a.mov(ax, si);
        a.shl(ax, 3);
        a.add(ax, 0x6000);
        a.mov(ss, ax);
        a.mov(sp, 0x80);
        a.@lock.inc(__dword_ptr[Started]);
        var barrier = a.CreateLabel();
        a.test(esi, esi);
        a.jnz(barrier);
        if (vcpus > 1)
        {
            apic.SendShorthand(a, 0xC4500); // INIT, all excluding self
            apic.SendShorthand(a, 0xC4600u | SipiPage); // SIPI, all excluding self
        }

        a.Label(ref barrier);
        a.pause();
        a.cmp(__dword_ptr[Started], vcpus);
        a.jb(barrier);
    }

    private static void AllToAll(Assembler a, StormApic apic, Handlers labels, int vcpus, bool mixed, Random rng)
    {
        var loop = a.CreateLabel();
        var stop = a.CreateLabel();
        var wrap = a.CreateLabel();
        var noToggle = a.CreateLabel();
        a.mov(edi, esi);
        a.xor(ebx, ebx);
        if (mixed)
        {
            ArmTimerFirst(a, apic, labels);
        }

        a.sti();
        a.Label(ref loop);
        a.cmp(__dword_ptr[Stop], 0);
        a.jne(stop);
        if (mixed)
        {
            // IF off for a few instructions (IRQs wait in IRR; the run loop asks for a window),
            // and every 2^k iterations TPR flips between 0 and 0x40, which masks vector 0x40
            // (class 4 ≤ PPR class 4) but not the timer's 0x50.
            a.inc(ebx);
            a.cli();
            a.nop();
            a.nop();
            a.sti();
            a.test(ebx, (1u << rng.Next(2, 6)) - 1);
            a.jnz(noToggle);
            a.mov(eax, ebx);
            a.and(eax, 0x40u);
            apic.WriteEax(a, StormApic.Tpr);
            a.Label(ref noToggle);
        }

        a.inc(edi);
        a.cmp(edi, vcpus);
        a.jb(wrap);
        a.xor(edi, edi);
        a.Label(ref wrap);
        a.cmp(edi, esi);
        a.je(loop);
        a.mov(dx, si);
        a.inc(dx);
        a.xor(ax, ax);
        a.@lock.cmpxchg(__word_ptr.gs[edi * 2], dx); // claim the target's slot
        a.jne(loop);
        a.inc(__dword_ptr.fs[Sent]);
        if (vcpus <= PairLimit)
        {
            a.inc(__dword_ptr.es[edi * 4]);
        }

        apic.SendTo(a, 0x4000u | IpiVector); // fixed, physical, assert
        a.jmp(loop);

        a.Label(ref stop);
        if (mixed)
        {
            apic.Write(a, StormApic.Tpr, 0);
            a.sti();
            DrainTimer(a);
        }

        DoneForever(a);
    }

    private static void SelfIpis(Assembler a, StormApic apic)
    {
        var loop = a.CreateLabel();
        var stop = a.CreateLabel();
        a.sti();
        a.Label(ref loop);
        a.cmp(__dword_ptr[Stop], 0);
        a.jne(stop);
        // Force an immediate exit (spec §5 step 8, -EBUSY): with IF=0 the self-IPI waits in IRR;
        // the WRMSR to an unknown MSR in the STI shadow exits, and the run loop then has a #GP
        // to inject and the IRQ pending at once. It injects the #GP, cannot inject the IRQ too,
        // and enters with force_immediate_exit. The #GP handler counts in the Armed/Fired pair.
        a.inc(__dword_ptr.fs[Sent]);
        a.cli();
        apic.SelfIpi(a, SelfVectorMsr); // x2APIC SELF_IPI (xAPIC: ICR self shorthand)
        a.inc(__dword_ptr.fs[Armed]);
        a.mov(ecx, UnknownMsr);
        a.sti();
        a.wrmsr(); // #GP, in the STI shadow
        WaitReceived(a);
        a.inc(__dword_ptr.fs[Sent]);
        apic.SendShorthand(a, 0x44000u | SelfVectorIcr); // ICR shorthand self
        WaitReceived(a);
        a.jmp(loop);
        a.Label(ref stop);
        DoneForever(a);
    }

    /// <summary>An MSR no model implements: WRMSR to it raises #GP (SDM vol. 4).</summary>
    private const uint UnknownMsr = 0x4000_DEAD;

    private static void Timers(Assembler a, StormApic apic, Handlers labels)
    {
        var loop = a.CreateLabel();
        ArmTimerFirst(a, apic, labels);
        a.sti();
        a.Label(ref loop);
        a.pause();
        a.cmp(__dword_ptr[Stop], 0);
        a.je(loop);
        DrainTimer(a);
        DoneForever(a);
    }

    private static void PingPong(Assembler a, StormApic apic, int vcpus)
    {
        var alone = a.CreateLabel();
        var responder = a.CreateLabel();
        var loop = a.CreateLabel();
        var stop = a.CreateLabel();
        a.mov(edi, esi);
        a.xor(edi, 1u); // partner
        a.cmp(edi, vcpus);
        a.jae(alone);
        a.sti();
        a.test(esi, 1u);
        a.jnz(responder);

        // Initiator: ping, then STI; HLT until the pong is in (the STI shadow closes the window).
        a.Label(ref loop);
        a.cmp(__dword_ptr[Stop], 0);
        a.jne(stop);
        a.inc(__dword_ptr.fs[Sent]);
        apic.SendTo(a, 0x4000u | PingVector);
        var wait = a.CreateLabel();
        var got = a.CreateLabel();
        a.Label(ref wait);
        a.cli();
        a.mov(eax, __dword_ptr.fs[Sent]);
        a.cmp(__dword_ptr.fs[Received], eax);
        a.jae(got);
        a.sti();
        a.hlt();
        a.jmp(wait);
        a.Label(ref got);
        a.sti();
        a.jmp(loop);
        a.Label(ref stop);
        DoneForever(a);

        // Responder: halt until a ping is unanswered, answer it.
        var rgot = a.CreateLabel();
        a.Label(ref responder);
        a.cli();
        a.mov(eax, __dword_ptr.fs[Sent]);
        a.cmp(__dword_ptr.fs[Received], eax);
        a.ja(rgot);
        a.sti();
        a.hlt();
        a.jmp(responder);
        a.Label(ref rgot);
        a.sti();
        a.inc(__dword_ptr.fs[Sent]);
        apic.SendTo(a, 0x4000u | PingVector);
        a.jmp(responder);

        a.Label(ref alone);
        DoneForever(a);
    }

    private static void InitSipi(Assembler a, StormApic apic, int vcpus)
    {
        var ap = a.CreateLabel();
        var loop = a.CreateLabel();
        var stop = a.CreateLabel();
        var wait = a.CreateLabel();
        a.test(esi, esi);
        a.jnz(ap);

        VisitApsRoundRobin(a, vcpus, ref loop, stop);
        a.mov(ebx, __dword_ptr.es[Received]);
        a.inc(__dword_ptr.es[Sent]);
        apic.SendTo(a, 0x4500); // INIT
        apic.SendTo(a, 0x4600u | SipiPage); // SIPI
        a.Label(ref wait);
        a.pause();
        a.cmp(__dword_ptr.es[Received], ebx);
        a.je(wait);
        a.jmp(loop);
        a.Label(ref stop);
        a.@lock.inc(__dword_ptr[Done]);
        HaltForever(a, interrupts: false);

        // AP: count the boot, then halt with IF=0 (only INIT wakes it, I12).
        a.Label(ref ap);
        a.inc(__dword_ptr.fs[Received]);
        a.@lock.inc(__dword_ptr[Boots]);
        HaltForever(a, interrupts: false);
    }

    /// <summary>
    /// The BSP visits the APs round robin. Each AP, once booted, halts with IF=0 for good, so
    /// only NMI, INIT or SIPI may end its HLT (I12). Per visit: a fixed IRQ (HeldVector) that
    /// stays pending in IRR; a SIPI 7 to the halted AP (dropped, I14); an NMI, waited for; then
    /// INIT, SIPI 9, INIT, SIPI 8 back to back — the second INIT replaces SIPI 9 if it is still
    /// pending, so the AP boots via page 8 exactly once and via page 9 at most once (I14); the BSP
    /// waits for the page-8 boot and sends one more SIPI 7 to the AP that is now running (dropped).
    /// The AP's boot code counts by start page (BX from the stub; 0 from page 7 and at reset).
    /// </summary>
    private static void SipiRace(Assembler a, StormApic apic, int vcpus)
    {
        var ap = a.CreateLabel();
        var loop = a.CreateLabel();
        var stop = a.CreateLabel();
        a.test(esi, esi);
        a.jnz(ap);

        VisitApsRoundRobin(a, vcpus, ref loop, stop);
        a.mov(ax, di);
        a.add(ax, 0xE000);
        a.mov(gs, ax); // its race record

        apic.SendTo(a, 0x4000u | HeldVector); // fixed: must stay in IRR while the AP halts with IF=0
        a.inc(__dword_ptr.gs[SipisDropped]);
        apic.SendTo(a, 0x4600u | SipiPage); // the AP is not waiting for SIPI: dropped

        var nmi = a.CreateLabel();
        a.mov(ebx, __dword_ptr.es[Fired]);
        a.inc(__dword_ptr.gs[NmisSent]);
        apic.SendTo(a, 0x4400); // NMI
        a.Label(ref nmi);
        a.pause();
        a.cmp(__dword_ptr.es[Fired], ebx);
        a.je(nmi);

        var booted = a.CreateLabel();
        a.mov(ebx, __dword_ptr.es[Received]);
        a.inc(__dword_ptr.es[Sent]);
        apic.SendTo(a, 0x4500); // INIT
        apic.SendTo(a, 0x4600u | OverriddenSipiPage);
        apic.SendTo(a, 0x4500); // INIT: replaces SIPI 9 if it is still pending
        apic.SendTo(a, 0x4600u | WinningSipiPage);
        a.Label(ref booted);
        a.pause();
        a.cmp(__dword_ptr.es[Received], ebx);
        a.je(booted);
        a.inc(__dword_ptr.gs[SipisDropped]);
        apic.SendTo(a, 0x4600u | SipiPage); // the AP is running: dropped
        a.jmp(loop);

        a.Label(ref stop);
        a.@lock.inc(__dword_ptr[Done]);
        HaltForever(a, interrupts: false);

        // AP: count the boot by start page, then HLT with IF=0 for good, counting every wake.
        var page8 = a.CreateLabel();
        var page9 = a.CreateLabel();
        var counted = a.CreateLabel();
        var halt = a.CreateLabel();
        a.Label(ref ap);
        a.mov(ax, si);
        a.add(ax, 0xE000);
        a.mov(es, ax);
        a.cmp(bx, 1);
        a.je(page8);
        a.cmp(bx, 2);
        a.je(page9);
        a.inc(__dword_ptr.es[BootsPage7]);
        a.@lock.inc(__dword_ptr[Boots]);
        a.jmp(counted);
        a.Label(ref page8);
        a.inc(__dword_ptr.fs[Received]);
        a.jmp(counted);
        a.Label(ref page9);
        a.inc(__dword_ptr.es[BootsPage9]);
        a.Label(ref counted);
        a.cli();
        a.Label(ref halt);
        a.hlt();
        a.inc(__dword_ptr.fs[Armed]);
        a.jmp(halt);
    }

    /// <summary>
    /// Periodic mode, divide by 1, TMICT = 1: a 1 ns period that KVM clamps to
    /// min_timer_period_us (200 µs). Ticks may coalesce under load; they may never come faster.
    /// </summary>
    private static void Periodic(Assembler a, StormApic apic)
    {
        var loop = a.CreateLabel();
        a.mov(ax, si);
        a.add(ax, 0xE000);
        a.mov(es, ax);
        apic.Write(a, StormApic.Tdcr, 0xB); // TDCR: divide by 1
        apic.Write(a, StormApic.Lvtt, 0x20000u | PeriodicVector); // LVTT: periodic
        a.rdtsc(); // t0 before the timer starts: every tick comes after t0 + k·period
        a.mov(__dword_ptr.es[0], eax);
        a.mov(__dword_ptr.es[4], edx);
        a.inc(__dword_ptr.fs[Armed]);
        apic.Write(a, StormApic.Tmict, 1); // TMICT
        a.sti();
        a.Label(ref loop);
        a.pause();
        a.cmp(__dword_ptr[Stop], 0);
        a.je(loop);
        apic.Write(a, StormApic.Tmict, 0); // TMICT = 0 stops the timer
        DoneForever(a);
    }

    // ---- pieces ---------------------------------------------------------------------------------

    /// <summary>
    /// The BSP's visit loop of the INIT/SIPI storms. It first waits until every AP counted its
    /// first boot (from the broadcast): an INIT that lands before that count would erase it from
    /// the ledger. Then, at <paramref name="loop"/>, it leaves for <paramref name="stop"/> once Stop
    /// is set, else picks the next AP round robin: EDI = its index (1..vcpus-1), ES = its record.
    /// </summary>
    private static void VisitApsRoundRobin(Assembler a, int vcpus, ref Label loop, Label stop)
    {
        var firstBoots = a.CreateLabel();
        var wrap = a.CreateLabel();
        a.Label(ref firstBoots);
        a.pause();
        a.cmp(__dword_ptr[Boots], vcpus - 1);
        a.jb(firstBoots);
        a.xor(edi, edi);
        a.Label(ref loop);
        a.cmp(__dword_ptr[Stop], 0);
        a.jne(stop);
        a.inc(edi);
        a.cmp(edi, vcpus);
        a.jb(wrap);
        a.mov(edi, 1u);
        a.Label(ref wrap);
        a.mov(ax, di);
        a.add(ax, 0x3000);
        a.mov(es, ax);
    }

    /// <summary>LVTT: TSC-deadline mode (bits 18:17 = 2), vector 0x50; arm the first deadline.</summary>
    private static void ArmTimerFirst(Assembler a, StormApic apic, Handlers labels)
    {
        apic.Write(a, StormApic.Lvtt, 0x40000u | TimerVector);
        a.call(labels.ArmRoutine);
    }

    /// <summary>After the stop flag: handlers no longer re-arm, so wait until the last deadline fired.</summary>
    private static void DrainTimer(Assembler a)
    {
        var wait = a.CreateLabel();
        a.mov(eax, __dword_ptr.fs[Armed]);
        a.Label(ref wait);
        a.pause();
        a.cmp(__dword_ptr.fs[Fired], eax);
        a.jb(wait);
    }

    private static void WaitReceived(Assembler a)
    {
        var wait = a.CreateLabel();
        a.mov(eax, __dword_ptr.fs[Sent]);
        a.Label(ref wait);
        a.pause();
        a.cmp(__dword_ptr.fs[Received], eax);
        a.jb(wait);
    }

    private static void DoneForever(Assembler a)
    {
        a.sti();
        a.@lock.inc(__dword_ptr[Done]);
        HaltForever(a, interrupts: true);
    }

    private static void HaltForever(Assembler a, bool interrupts)
    {
        var l = a.CreateLabel();
        if (!interrupts)
        {
            a.cli();
        }

        a.Label(ref l);
        a.hlt();
        a.jmp(l);
    }

    private static byte[] Assemble(Assembler a, ulong address, out AssemblerResult result)
    {
        var writer = new BytesWriter();
        result = a.Assemble(writer, address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        return [.. writer.Bytes];
    }

    /// <summary>The interrupt handlers and the timer subroutine, emitted after the storm's code.</summary>
    private sealed class Handlers
    {
        private readonly StormApic _apic;

        public Handlers(Assembler a, StormApic apic)
        {
            _apic = apic;
            IpiHandler = a.CreateLabel("ipi");
            CountHandler = a.CreateLabel("count");
            TimerHandler = a.CreateLabel("timer");
            TickHandler = a.CreateLabel("tick");
            GpHandler = a.CreateLabel("gp");
            StrayHandler = a.CreateLabel("stray");
            NmiHandler = a.CreateLabel("nmi");
            SpuriousHandler = a.CreateLabel("spurious");
            ArmRoutine = a.CreateLabel("arm");
        }

        public Label IpiHandler;
        public Label CountHandler;
        public Label TimerHandler;
        public Label TickHandler;
        public Label GpHandler;
        public Label StrayHandler;
        public Label NmiHandler;
        public Label SpuriousHandler;
        public Label ArmRoutine;

        public void Emit(Assembler a, int vcpus, uint timerDelta)
        {
            // Fixed IPI: free own slot; a free slot means nobody sent this one (a duplicate).
            EnterHandler(a, ref IpiHandler);
            a.xor(eax, eax);
            a.xchg(__word_ptr.gs[esi * 2], ax);
            var got = a.CreateLabel();
            var eoi = a.CreateLabel();
            a.test(ax, ax);
            a.jnz(got);
            a.@lock.inc(__dword_ptr[Duplicates]);
            a.jmp(eoi);
            a.Label(ref got);
            a.inc(__dword_ptr.fs[Received]);
            if (vcpus <= PairLimit)
            {
                a.movzx(eax, ax);
                a.inc(__dword_ptr.es[(eax * 4) + 252]); // received-from[sender] (slot holds sender + 1)
            }

            a.Label(ref eoi);
            EoiAndReturn(a);

            // Self-IPI and ping: count.
            EnterHandler(a, ref CountHandler);
            a.inc(__dword_ptr.fs[Received]);
            EoiAndReturn(a);

            // TSC-deadline timer: count; the MSR must read 0 once the IRQ is in (I10); re-arm unless stopping.
            EnterHandler(a, ref TimerHandler);
            a.inc(__dword_ptr.fs[Fired]);
            a.mov(ecx, Msr.TscDeadline);
            a.rdmsr();
            a.or(eax, edx);
            var cleared = a.CreateLabel();
            var noArm = a.CreateLabel();
            a.jz(cleared);
            a.@lock.inc(__dword_ptr[TscDeadlineNotCleared]);
            a.Label(ref cleared);
            a.cmp(__dword_ptr[Stop], 0);
            a.jne(noArm);
            a.call(ArmRoutine);
            a.Label(ref noArm);
            EoiAndReturn(a);

            // Periodic tick: count it and keep the TSC of the last one.
            EnterHandler(a, ref TickHandler);
            a.inc(__dword_ptr.fs[Fired]);
            a.rdtsc();
            a.mov(__dword_ptr.es[8], eax);
            a.mov(__dword_ptr.es[12], edx);

            // Stop the timer from here once the stop flag is up: a vCPU whose handler takes
            // longer than the period (delays on, many vCPUs per core) never runs its main loop.
            var running = a.CreateLabel();
            a.cmp(__dword_ptr[Stop], 0);
            a.je(running);
            _apic.Write(a, StormApic.Tmict, 0);
            a.Label(ref running);
            EoiAndReturn(a);

            // #GP from the deliberate WRMSR: count it and skip the 2-byte instruction (real
            // mode pushes the faulting IP).
            a.Label(ref GpHandler);
            a.push(bp);
            a.mov(bp, sp);
            a.add(__word_ptr.ss[bp + 2], 2);
            a.pop(bp);
            a.inc(__dword_ptr.fs[Fired]);
            a.iret();

            // Any other vector: counted as stray (misrouted or invented).
            EnterHandler(a, ref StrayHandler);
            a.@lock.inc(__dword_ptr[Stray]);
            EoiAndReturn(a);

            // NMI (sipi-race): count; NMIs take no EOI.
            a.Label(ref NmiHandler);
            a.inc(__dword_ptr.fs[Fired]);
            a.iret();

            // Spurious vector: no EOI (SDM 11.9).
            a.Label(ref SpuriousHandler);
            a.iret();

            // Arm: deadline = TSC + delta; armed++.
            a.Label(ref ArmRoutine);
            a.rdtsc();
            a.add(eax, timerDelta);
            a.adc(edx, 0);
            a.mov(ecx, Msr.TscDeadline);
            a.wrmsr();
            a.inc(__dword_ptr.fs[Armed]);
            a.ret();
        }

        /// <summary>A handler's entry: its label, then the scratch registers <see cref="EoiAndReturn"/> restores.</summary>
        private static void EnterHandler(Assembler a, ref Label handler)
        {
            a.Label(ref handler);
            a.push(eax);
            a.push(ecx);
            a.push(edx);
        }

        private void EoiAndReturn(Assembler a)
        {
            _apic.Write(a, StormApic.Eoi, 0);
            a.pop(edx);
            a.pop(ecx);
            a.pop(eax);
            a.iret();
        }
    }

    private sealed class BytesWriter : CodeWriter
    {
        public List<byte> Bytes { get; } = [];

        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
