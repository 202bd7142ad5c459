using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

public static partial class PlatformGuests
{
    public static byte[] BuildApicSmp(KernelFormat format = KernelFormat.AoutKludge)
    {
        var kit = Start();
        var a = kit.A;
        var c = kit.C;
        const int selfVector = 0x50, physVector = 0x51, logicalVector = 0x52, broadcastVector = 0x53;
        const int oneShotVector = 0x60, periodicVector = 0x61, deadlineVector = 0x62;

        // The STI-shadow handler records whether the instruction after STI had run.
        kit.Handler(selfVector, x =>
        {
            x.mov(eax, __dword_ptr[PcGuestKit.VarFlag]);
            x.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
        });
        foreach (var v in new[] { physVector, logicalVector, broadcastVector, oneShotVector, periodicVector, deadlineVector })
        {
            kit.Handler(v);
        }

        kit.Handler(2, eoi: false); // NMI
        kit.EmitApEntry();
        kit.BuildIdt();
        kit.EnableApic();
        kit.ReadFwCfg32(Devices.FwCfg.NbCpus);
        a.mov(__dword_ptr[PcGuestKit.VarCpus], eax);
        a.mov(__dword_ptr[PcGuestKit.VarApsUp], 0);

        kit.StartAps();
        c.Print("cpus 0x");
        a.mov(eax, __dword_ptr[PcGuestKit.VarCpus]);
        c.PrintHexEax();
        c.Print(", aps up 0x");
        a.mov(eax, __dword_ptr[PcGuestKit.VarApsUp]);
        c.PrintHexEax();
        c.Print("\n");
        kit.Check("all aps started by init/sipi", (x, bad) =>
        {
            x.mov(eax, __dword_ptr[PcGuestKit.VarCpus]);
            x.dec(eax);
            x.cmp(eax, __dword_ptr[PcGuestKit.VarApsUp]);
            x.jne(bad);
        });

        // Self-IPI with IF=0, then STI: taken only after the instruction in the STI shadow.
        a.cli();
        a.mov(__dword_ptr[PcGuestKit.VarFlag], 0);
        a.mov(__dword_ptr[PcGuestKit.VarSeen], 0xFF);
        kit.SendIpi(0, 0x44000 | selfVector); // shorthand self, fixed, assert
        kit.CheckEquals("self-ipi held while IF=0", PcGuestKit.Counter(0, selfVector), 0);
        a.sti();
        a.mov(__dword_ptr[PcGuestKit.VarFlag], 1); // in the STI shadow
        a.nop();
        a.cli();
        kit.CheckEquals("self-ipi taken once", PcGuestKit.Counter(0, selfVector), 1);
        kit.CheckEquals("self-ipi taken after the sti shadow", PcGuestKit.VarSeen, 1);

        // TPR masking: class 5 waits while TPR is 0x60, arrives when TPR drops.
        a.mov(__dword_ptr[PcGuestKit.ApicTpr], 0x60);
        kit.SendIpi(0, 0x44000 | selfVector);
        a.sti();
        kit.Delay(10_000);
        a.cli();
        kit.CheckEquals("tpr 0x60 masks vector 0x50", PcGuestKit.Counter(0, selfVector), 1);
        a.mov(__dword_ptr[PcGuestKit.ApicTpr], 0);
        a.sti();
        a.nop();
        a.nop();
        a.cli();
        kit.CheckEquals("tpr 0 lets it in", PcGuestKit.Counter(0, selfVector), 2);

        // IPIs to every AP: physical, flat logical (1 << id, APIC IDs 1-7) and broadcast; NMI to APIC 1.
        var apLoop = a.CreateLabel();
        var apDone = a.CreateLabel();
        var apFail = a.CreateLabel();
        var apNext = a.CreateLabel();
        a.mov(edi, 1);
        a.Label(ref apLoop);
        a.cmp(edi, __dword_ptr[PcGuestKit.VarCpus]);
        a.jae(apDone);
        a.mov(eax, edi);
        a.shl(eax, 24);
        a.mov(__dword_ptr[PcGuestKit.ApicIcrHigh], eax);
        a.mov(__dword_ptr[PcGuestKit.ApicIcrLow], 0x4000 | physVector);
        a.mov(ebx, edi);
        a.shl(ebx, 10);
        a.push(edi);
        a.mov(ecx, 20_000_000);
        var w1 = a.CreateLabel();
        var w1Done = a.CreateLabel();
        a.Label(ref w1);
        a.cmp(__dword_ptr[ebx + (int)PcGuestKit.Counter(0, physVector)], 1);
        a.jae(w1Done);
        a.pause();
        a.dec(ecx);
        a.jnz(w1);
        a.pop(edi);
        a.jmp(apFail);
        a.Label(ref w1Done);
        a.pop(edi);

        // The flat logical model addresses 8 local APICs, one LDR bit each (SDM 11.6.2.2): APs
        // with a higher ID take the physical IPI only.
        a.cmp(edi, 8);
        a.jae(apNext);
        a.mov(ecx, edi);
        a.mov(eax, 1);
        a.shl(eax, cl);
        a.shl(eax, 24);
        a.mov(__dword_ptr[PcGuestKit.ApicIcrHigh], eax);
        a.mov(__dword_ptr[PcGuestKit.ApicIcrLow], 0x4800 | logicalVector);
        a.push(edi);
        a.mov(ecx, 20_000_000);
        var w2 = a.CreateLabel();
        var w2Done = a.CreateLabel();
        a.Label(ref w2);
        a.cmp(__dword_ptr[ebx + (int)PcGuestKit.Counter(0, logicalVector)], 1);
        a.jae(w2Done);
        a.pause();
        a.dec(ecx);
        a.jnz(w2);
        a.pop(edi);
        a.jmp(apFail);
        a.Label(ref w2Done);
        a.pop(edi);
        a.Label(ref apNext);
        a.inc(edi);
        a.jmp(apLoop);
        a.Label(ref apFail);
        a.inc(__dword_ptr[PcGuestKit.VarFailures]);
        c.Print("ipi to an ap FAILED\n");
        a.Label(ref apDone);

        var noAps = a.CreateLabel();
        var apsDone = a.CreateLabel();
        a.cmp(__dword_ptr[PcGuestKit.VarCpus], 2);
        a.jb(noAps);
        c.Print("ipi physical and logical to each ap done\n");
        kit.SendIpi(0, 0xC4000 | broadcastVector); // all excluding self
        a.mov(eax, __dword_ptr[PcGuestKit.VarCpus]);
        a.dec(eax);
        a.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
        var sum = a.CreateLabel();
        var sumLoop = a.CreateLabel();
        var sumDone = a.CreateLabel();
        a.mov(esi, 20_000_000);
        a.Label(ref sum);
        a.xor(eax, eax);
        a.mov(edi, 1);
        a.Label(ref sumLoop);
        a.cmp(edi, __dword_ptr[PcGuestKit.VarCpus]);
        a.jae(sumDone);
        a.mov(ebx, edi);
        a.shl(ebx, 10);
        a.add(eax, __dword_ptr[ebx + (int)PcGuestKit.Counter(0, broadcastVector)]);
        a.inc(edi);
        a.jmp(sumLoop);
        a.Label(ref sumDone);
        a.cmp(eax, __dword_ptr[PcGuestKit.VarSeen]);
        var sumOk = a.CreateLabel();
        a.jae(sumOk);
        a.pause();
        a.dec(esi);
        a.jnz(sum);
        a.Label(ref sumOk);
        a.mov(__dword_ptr[PcGuestKit.VarFlag], eax);
        kit.Check("broadcast ipi reaches every ap once", (x, bad) =>
        {
            x.mov(eax, __dword_ptr[PcGuestKit.VarFlag]);
            x.cmp(eax, __dword_ptr[PcGuestKit.VarSeen]);
            x.jne(bad);
        });
        kit.CheckEquals("broadcast ipi skips the sender", PcGuestKit.Counter(0, broadcastVector), 0);

        kit.SendIpi(1 << 24, 0x4400); // NMI, physical, APIC 1
        kit.SpinUntil(PcGuestKit.Counter(1, 2), 1);
        kit.CheckEquals("nmi to cpu 1", PcGuestKit.Counter(1, 2), 1);
        a.jmp(apsDone);
        a.Label(ref noAps);
        c.Print("no aps: ipi tests skipped\n");
        a.Label(ref apsDone);

        // Timers (divide by 1). One-shot: exactly one interrupt, TMCCT 0 afterwards.
        a.mov(__dword_ptr[PcGuestKit.ApicTdcr], 0x0B);
        a.mov(__dword_ptr[PcGuestKit.ApicLvtTimer], oneShotVector);
        a.mov(__dword_ptr[PcGuestKit.ApicTmict], 200_000);
        kit.HaltUntil(PcGuestKit.Counter(0, oneShotVector), 1);
        a.sti();
        kit.Delay(200_000);
        a.cli();
        kit.CheckEquals("one-shot timer fires once", PcGuestKit.Counter(0, oneShotVector), 1);
        kit.CheckEquals("one-shot tmcct 0 after expiry", PcGuestKit.ApicTmcct, 0);

        // Periodic: keeps firing; stop after three.
        a.mov(__dword_ptr[PcGuestKit.ApicLvtTimer], 0x20000 | periodicVector);
        a.mov(__dword_ptr[PcGuestKit.ApicTmict], 500_000);
        kit.HaltUntil(PcGuestKit.Counter(0, periodicVector), 3);
        a.mov(__dword_ptr[PcGuestKit.ApicLvtTimer], 0x10000 | periodicVector);
        a.mov(__dword_ptr[PcGuestKit.ApicTmict], 0);
        kit.Check("periodic timer fires repeatedly", (x, bad) =>
        {
            x.cmp(__dword_ptr[PcGuestKit.Counter(0, periodicVector)], 3);
            x.jb(bad);
        });

        // TSC-deadline (CPUID.1:ECX[24]): one interrupt, the MSR reads 0 after it; a deadline in
        // the past fires at once.
        var noDeadline = a.CreateLabel();
        var deadlineDone = a.CreateLabel();
        a.mov(eax, 1);
        a.cpuid();
        a.test(ecx, 1 << 24);
        a.jz(noDeadline);
        a.mov(__dword_ptr[PcGuestKit.ApicLvtTimer], 0x40000 | deadlineVector);
        a.rdtsc();
        a.add(eax, 2_000_000);
        a.adc(edx, 0);
        a.mov(ecx, 0x6E0);
        a.wrmsr();
        kit.HaltUntil(PcGuestKit.Counter(0, deadlineVector), 1);
        a.mov(ecx, 0x6E0);
        a.rdmsr();
        a.or(eax, edx);
        kit.Check("tsc-deadline msr reads 0 after expiry", (x, bad) =>
        {
            x.test(eax, eax);
            x.jnz(bad);
        });
        a.xor(edx, edx);
        a.mov(eax, 1);
        a.mov(ecx, 0x6E0);
        a.wrmsr();
        kit.HaltUntil(PcGuestKit.Counter(0, deadlineVector), 2);
        kit.CheckEquals("tsc-deadline timer: two interrupts for two deadlines", PcGuestKit.Counter(0, deadlineVector), 2);
        a.jmp(deadlineDone);
        a.Label(ref noDeadline);
        c.Print("tsc-deadline not offered\n");
        a.Label(ref deadlineDone);

        kit.Finish();
        return kit.Kernel.Build(format);
    }
}
