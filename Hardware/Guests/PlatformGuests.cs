using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

/// <summary>
/// Guests that check the QEMU-pc platform and the local APIC the way kvm-unit-tests-style
/// kernels use them (issue 8, issue 4's guest-level tests). Each prints one line per check
/// ("NAME ok" / "NAME FAILED"), then PASS (debug-exit 0, status 1) or FAIL (status 3). They run
/// in 32-bit protected mode without paging, where every device address is reachable.
/// </summary>
public static class PlatformGuests
{
    public static IReadOnlyList<GuestProgram> All { get; } =
    [
        new("pc-devices", "fw_cfg, CMOS memory size, PIC masks, PIT channel 2 via port 0x61, PCI no-device, pc-testdev scratch/iomem, ACPI RSDP/MADT by scanning", BuildDevices),
        new("pc-ioapic", "pc-testdev IRQ lines and the PIT's IRQ 0 through the IOAPIC (edge and level, EOI) to LAPIC handlers", BuildIoApic),
        new("pc-reset", "prints a line and resets through port 0xCF9 (the run ends, as with QEMU -no-reboot)", BuildReset),
        new("cpu-rules", "NMIs blocked until IRET with one latched, #GP from a bad WRMSR and #UD from UD2 at the faulting instruction, the KVM PV send-IPI hypercall (ActorVm only: QEMU TCG has no KVM hypercalls)", BuildCpuRules),
        new("longmode-4m", "ELF32 with its program header at 4 MiB and a 4 MiB BSS: BSS zeroed, cmdline valid, long mode with a 4 GiB map, fw_cfg CPUs and the APIC ID (always ELF32)", HighLoadKernel.Build),
        new("cr8-apic-off", "64-bit: CR8 keeps its value while IA32_APIC_BASE.EN is clear, across a VM exit", BuildCr8ApicOff),
        new("apic-smp", "INIT/SIPI start-up of every AP through a trampoline at 0; self-IPI and the STI shadow, TPR masking, IPIs by physical/logical/broadcast destination, NMI to an AP; one-shot, periodic and TSC-deadline timers", BuildApicSmp),
    ];

    private static PcGuestKit Start()
    {
        var kit = new PcGuestKit(new MultibootKernelBuilder());
        var a = kit.A;
        a.mov(__dword_ptr[PcGuestKit.VarFailures], 0);
        kit.MaskPic();
        return kit;
    }

    public static byte[] BuildDevices(KernelFormat format = KernelFormat.AoutKludge)
    {
        var kit = Start();
        var a = kit.A;
        var c = kit.C;

        // fw_cfg: the signature "QEMU" and the CPU count (QEMU's fw_cfg_arch_create).
        kit.ReadFwCfg32(Devices.FwCfg.Signature);
        kit.Check("fw_cfg signature", (x, bad) =>
        {
            x.cmp(eax, 0x554D4551); // "QEMU"
            x.jne(bad);
        });
        kit.ReadFwCfg32(Devices.FwCfg.NbCpus);
        a.mov(__dword_ptr[PcGuestKit.VarCpus], eax);
        c.Print("fw_cfg cpus 0x");
        a.mov(eax, __dword_ptr[PcGuestKit.VarCpus]);
        c.PrintHexEax();
        c.Print("\n");

        // CMOS 0x34/0x35: RAM above 16 MiB in 64 KiB units (128 MiB → 0x0700).
        kit.ReadCmos(0x35);
        a.movzx(esi, al);
        a.shl(esi, 8);
        kit.ReadCmos(0x34);
        a.movzx(eax, al);
        a.or(eax, esi);
        a.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
        c.Print("cmos mem above 16M 0x"); // printing clobbers EAX/ESI
        a.mov(eax, __dword_ptr[PcGuestKit.VarSeen]);
        c.PrintHexEax();
        c.Print("\n");

        // 8259 masks read back as written (OCW1).
        a.mov(al, 0xA5);
        a.@out(0x21, al);
        a.mov(al, 0x5A);
        a.@out(0xA1, al);
        a.@in(al, 0x21);
        a.mov(ah, al);
        a.@in(al, 0xA1);
        a.movzx(eax, ax);
        a.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
        kit.CheckEquals("pic masks", PcGuestKit.VarSeen, 0xA55A);
        kit.MaskPic();

        // PIT channel 2, mode 0, gated through port 0x61: OUT2 (bit 5) low after the count is
        // loaded, high once it ran out.
        a.@in(al, 0x61);
        a.and(al, 0xFC);
        a.@out(0x61, al); // gate off, speaker off
        a.mov(al, 0xB0);  // channel 2, LSB then MSB, mode 0, binary
        a.@out(0x43, al);
        a.mov(al, 0x00);
        a.@out(0x42, al);
        a.mov(al, 0x04);  // 0x400 ticks ≈ 0.86 ms
        a.@out(0x42, al);
        a.@in(al, 0x61);
        a.or(al, 1);
        a.@out(0x61, al); // gate on
        a.@in(al, 0x61);
        kit.Check("pit ch2 out low after load", (x, bad) =>
        {
            x.test(al, 0x20);
            x.jnz(bad);
        });
        var pitLoop = a.CreateLabel();
        var pitDone = a.CreateLabel();
        a.mov(ecx, 50_000_000);
        a.Label(ref pitLoop);
        a.@in(al, 0x61);
        a.test(al, 0x20);
        a.jnz(pitDone);
        a.dec(ecx);
        a.jnz(pitLoop);
        a.Label(ref pitDone);
        kit.Check("pit ch2 out high after count", (x, bad) =>
        {
            x.test(al, 0x20);
            x.jz(bad);
        });

        // PCI: an empty slot (bus 0, device 31) reads all ones.
        a.mov(dx, 0xCF8);
        a.mov(eax, 0x8000F800);
        a.@out(dx, eax);
        a.mov(dx, 0xCFC);
        a.@in(eax, dx);
        kit.Check("pci empty slot all-ones", (x, bad) =>
        {
            x.cmp(eax, -1);
            x.jne(bad);
        });

        // pc-testdev: the scratch register at 0xE0 and the RAM-like iomem window.
        a.mov(eax, 0x12345678);
        a.@out(0xE0, eax);
        a.@in(eax, 0xE0);
        kit.Check("testdev scratch", (x, bad) =>
        {
            x.cmp(eax, 0x12345678);
            x.jne(bad);
        });
        a.mov(__dword_ptr[(uint)Devices.PcTestDev.IomemBase + 0x40], 0xCAFEF00D);
        a.mov(__byte_ptr[(uint)Devices.PcTestDev.IomemBase + 0x41], 0x11);
        a.mov(eax, __dword_ptr[(uint)Devices.PcTestDev.IomemBase + 0x40]);
        kit.Check("testdev iomem", (x, bad) =>
        {
            x.cmp(eax, unchecked((int)0xCAFE110D));
            x.jne(bad);
        });

        // ACPI: scan the BIOS area for "RSD PTR ", follow the RSDT to the MADT, count its
        // enabled processor entries and find the IOAPIC.
        var scan = a.CreateLabel();
        var found = a.CreateLabel();
        var noRsdp = a.CreateLabel();
        a.mov(esi, 0xE0000);
        a.Label(ref scan);
        a.cmp(__dword_ptr[esi], 0x20445352); // "RSD "
        a.jne(noRsdp);
        a.cmp(__dword_ptr[esi + 4], 0x20525450); // "PTR "
        a.je(found);
        a.Label(ref noRsdp);
        a.add(esi, 16);
        a.cmp(esi, 0x100000);
        a.jb(scan);
        a.xor(esi, esi);
        a.Label(ref found);
        a.mov(__dword_ptr[PcGuestKit.VarSeen], esi);
        kit.Check("acpi rsdp found", (x, bad) =>
        {
            x.cmp(__dword_ptr[PcGuestKit.VarSeen], 0);
            x.je(bad);
        });

        // RSDT: entries from +36 to its length; find "APIC".
        var nextTable = a.CreateLabel();
        var madt = a.CreateLabel();
        var tablesDone = a.CreateLabel();
        a.xor(edi, edi);
        a.mov(esi, __dword_ptr[PcGuestKit.VarSeen]); // printing clobbered ESI
        a.test(esi, esi);
        a.jz(tablesDone);
        a.mov(ebx, __dword_ptr[esi + 16]); // RSDT address
        a.mov(edx, __dword_ptr[ebx + 4]);  // length
        a.add(edx, ebx);
        a.lea(esi, __[ebx + 36]);
        a.Label(ref nextTable);
        a.cmp(esi, edx);
        a.jae(tablesDone);
        a.mov(eax, __dword_ptr[esi]);
        a.cmp(__dword_ptr[eax], 0x43495041); // "APIC"
        a.je(madt);
        a.add(esi, 4);
        a.jmp(nextTable);
        a.Label(ref madt);
        a.mov(edi, eax);
        a.Label(ref tablesDone);

        // MADT entries from +44: type 0 (processor local APIC, flags bit 0 = enabled), type 1 (IOAPIC).
        var entry = a.CreateLabel();
        var notCpu = a.CreateLabel();
        var advance = a.CreateLabel();
        var madtDone = a.CreateLabel();
        a.mov(__dword_ptr[PcGuestKit.VarSeen], 0);
        a.mov(__dword_ptr[PcGuestKit.VarFlag], 0);
        a.test(edi, edi);
        a.jz(madtDone);
        a.mov(edx, __dword_ptr[edi + 4]);
        a.add(edx, edi);
        a.lea(esi, __[edi + 44]);
        a.Label(ref entry);
        a.cmp(esi, edx);
        a.jae(madtDone);
        a.cmp(__byte_ptr[esi], 0);
        a.jne(notCpu);
        a.test(__byte_ptr[esi + 4], 1);
        a.jz(advance);
        a.inc(__dword_ptr[PcGuestKit.VarSeen]);
        a.jmp(advance);
        a.Label(ref notCpu);
        a.cmp(__byte_ptr[esi], 1);
        a.jne(advance);
        a.mov(eax, __dword_ptr[esi + 4]);
        a.mov(__dword_ptr[PcGuestKit.VarFlag], eax);
        a.Label(ref advance);
        a.movzx(eax, __byte_ptr[esi + 1]);
        a.test(eax, eax);
        a.jz(madtDone);
        a.add(esi, eax);
        a.jmp(entry);
        a.Label(ref madtDone);
        c.Print("madt cpus 0x");
        a.mov(eax, __dword_ptr[PcGuestKit.VarSeen]);
        c.PrintHexEax();
        c.Print("\n");
        kit.Check("madt cpus match fw_cfg", (x, bad) =>
        {
            x.mov(eax, __dword_ptr[PcGuestKit.VarSeen]);
            x.cmp(eax, __dword_ptr[PcGuestKit.VarCpus]);
            x.jne(bad);
        });
        kit.CheckEquals("madt ioapic at 0xfec00000", PcGuestKit.VarFlag, PcGuestKit.IoApicBase);

        kit.Finish();
        return kit.Kernel.Build(format);
    }

    public static byte[] BuildIoApic(KernelFormat format = KernelFormat.AoutKludge)
    {
        var kit = Start();
        var a = kit.A;
        const int edgePin = 10, levelPin = 11;
        const int edgeVector = 0x40, levelVector = 0x41, pitVector = 0x48;

        kit.Handler(edgeVector);

        // Level-triggered: the device keeps the line up until its handler tells it to stop; the
        // EOI then reaches the IOAPIC (remote IRR cleared) and, with the line low, nothing repeats.
        kit.Handler(levelVector, x =>
        {
            x.mov(dx, (ushort)(Devices.PcTestDev.IrqPortBase + levelPin));
            x.mov(al, 0);
            x.@out(dx, al);
        });
        kit.Handler(pitVector);
        kit.BuildIdt();
        kit.EnableApic();

        kit.IoApicRoute(edgePin, edgeVector, 0); // fixed, physical, edge, high, unmasked → APIC 0
        kit.SetIrqLine(edgePin, true);
        kit.HaltUntil(PcGuestKit.Counter(0, edgeVector), 1);
        a.sti();
        kit.Delay(100_000); // a line held high is one edge, one interrupt
        a.cli();
        kit.SetIrqLine(edgePin, false);
        kit.CheckEquals("ioapic edge pin once per edge", PcGuestKit.Counter(0, edgeVector), 1);

        kit.IoApicRoute(levelPin, levelVector | (1 << 15), 0); // level-triggered
        kit.SetIrqLine(levelPin, true);
        kit.HaltUntil(PcGuestKit.Counter(0, levelVector), 1);
        kit.Delay(100_000);
        kit.CheckEquals("ioapic level pin until the handler lowers it", PcGuestKit.Counter(0, levelVector), 1);
        a.mov(__dword_ptr[PcGuestKit.IoApicBase], 0x10 + (2 * levelPin));
        a.mov(eax, __dword_ptr[PcGuestKit.IoApicBase + 0x10]);
        kit.Check("ioapic remote irr cleared by eoi", (x, bad) =>
        {
            x.test(eax, 1 << 14);
            x.jnz(bad);
        });

        // Masked pin: an edge while masked is not delivered.
        kit.IoApicRoute(edgePin, edgeVector | (1 << 16), 0);
        kit.SetIrqLine(edgePin, true);
        kit.SetIrqLine(edgePin, false);
        kit.Delay(100_000);
        kit.CheckEquals("ioapic masked pin silent", PcGuestKit.Counter(0, edgeVector), 1);

        // The PIT's IRQ 0 arrives on IOAPIC pin 2 (the MADT's interrupt source override): mode 2,
        // 1193 ticks ≈ 1 ms; take three, then mask.
        kit.IoApicRoute(2, pitVector, 0);
        a.mov(al, 0x34); // channel 0, LSB then MSB, mode 2
        a.@out(0x43, al);
        a.mov(al, 0xA9);
        a.@out(0x40, al);
        a.mov(al, 0x04);
        a.@out(0x40, al);
        kit.HaltUntil(PcGuestKit.Counter(0, pitVector), 3);
        kit.IoApicRoute(2, pitVector | (1 << 16), 0);
        kit.Check("pit irq0 through ioapic pin 2", (x, bad) =>
        {
            x.cmp(__dword_ptr[PcGuestKit.Counter(0, pitVector)], 3);
            x.jb(bad);
        });

        kit.Finish();
        return kit.Kernel.Build(format);
    }

    public static byte[] BuildReset(KernelFormat format = KernelFormat.AoutKludge)
    {
        var kit = Start();
        var a = kit.A;
        kit.C.Print("resetting through 0xcf9\n");
        a.mov(dx, 0xCF9);
        a.mov(al, 0x02);
        a.@out(dx, al);
        a.mov(al, 0x06); // hard reset
        a.@out(dx, al);
        kit.C.Print("reset ignored\n");
        kit.C.DebugExit(2);
        return kit.Kernel.Build(format);
    }

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

        // IPIs to every AP: physical, flat logical (1 << id) and broadcast; NMI to APIC 1.
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

    public static byte[] BuildCpuRules(KernelFormat format = KernelFormat.AoutKludge)
    {
        var kit = Start();
        var a = kit.A;
        const int pvVector = 0x54;

        // NMI handler: the first NMI sends itself two more before its IRET. While it runs NMIs are
        // blocked and at most one is latched (SDM 6.7.1), so exactly one follows the IRET.
        kit.Handler(2, x =>
        {
            var skip = x.CreateLabel();
            x.cmp(__dword_ptr[PcGuestKit.Counter(0, 2)], 1);
            x.jne(skip);
            kit.SendIpi(0, 0x4400);
            kit.SendIpi(0, 0x4400);
            kit.Delay(20_000);
            x.Label(ref skip);
        }, eoi: false);

        // #GP and #UD: record the faulting EIP, step over the 2-byte instruction (WRMSR, UD2).
        kit.RawHandler(13, x =>
        {
            x.add(esp, 4); // error code
            x.push(eax);
            x.mov(eax, __dword_ptr[esp + 4]);
            x.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
            x.add(__dword_ptr[esp + 4], 2);
            x.pop(eax);
            x.iretd();
        });
        kit.RawHandler(6, x =>
        {
            x.push(eax);
            x.mov(eax, __dword_ptr[esp + 4]);
            x.mov(__dword_ptr[PcGuestKit.VarFlag], eax);
            x.add(__dword_ptr[esp + 4], 2);
            x.pop(eax);
            x.iretd();
        });
        kit.Handler(pvVector);
        kit.EmitApEntry();
        kit.BuildIdt();
        kit.EnableApic();
        kit.ReadFwCfg32(Devices.FwCfg.NbCpus);
        a.mov(__dword_ptr[PcGuestKit.VarCpus], eax);
        kit.StartAps();

        kit.SendIpi(0, 0x4400); // NMI to APIC 0 (ourselves), physical
        kit.Delay(50_000);
        kit.CheckEquals("nmi blocked until iret, one latched", PcGuestKit.Counter(0, 2), 2);

        // The faulting instruction's own address is the one after "pop ebx" (CALL pushes it).
        var next = a.CreateLabel();
        a.mov(ecx, 0xDEAD); // no such MSR
        a.xor(eax, eax);
        a.xor(edx, edx);
        a.call(next);
        a.Label(ref next);
        a.pop(ebx);
        a.wrmsr();
        a.inc(ebx);
        kit.Check("#gp from a bad wrmsr at its own eip", (x, bad) =>
        {
            x.cmp(__dword_ptr[PcGuestKit.VarSeen], ebx);
            x.jne(bad);
        });
        var next2 = a.CreateLabel();
        a.call(next2);
        a.Label(ref next2);
        a.pop(ebx);
        a.ud2();
        a.inc(ebx);
        kit.Check("#ud from ud2 at its own eip", (x, bad) =>
        {
            x.cmp(__dword_ptr[PcGuestKit.VarFlag], ebx);
            x.jne(bad);
        });

        // KVM_HC_SEND_IPI (RAX 10): bitmap 0b10 from APIC ID 0, fixed vector 0x54 → APIC 1.
        var noPv = a.CreateLabel();
        var pvDone = a.CreateLabel();
        a.mov(eax, 0x40000001);
        a.cpuid();
        a.test(eax, 1 << 11); // KVM_FEATURE_PV_SEND_IPI
        a.jz(noPv);
        a.cmp(__dword_ptr[PcGuestKit.VarCpus], 2);
        a.jb(noPv);
        a.mov(eax, 10);
        a.mov(ebx, 2);
        a.xor(ecx, ecx);
        a.xor(edx, edx);
        a.mov(esi, 0x4000 | pvVector);
        a.vmcall();
        a.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
        kit.CheckEquals("pv send-ipi returns the number of targets", PcGuestKit.VarSeen, 1);
        kit.SpinUntil(PcGuestKit.Counter(1, pvVector), 1);
        kit.CheckEquals("pv send-ipi reaches apic 1", PcGuestKit.Counter(1, pvVector), 1);
        a.mov(eax, 11); // an unknown hypercall
        a.vmcall();
        a.mov(__dword_ptr[PcGuestKit.VarSeen], eax);
        kit.CheckEquals("unknown hypercall returns -KVM_ENOSYS", PcGuestKit.VarSeen, unchecked((uint)-1000));
        a.jmp(pvDone);
        a.Label(ref noPv);
        kit.C.Print("pv send-ipi not offered\n");
        a.Label(ref pvDone);

        kit.Finish();
        return kit.Kernel.Build(format);
    }

    public static byte[] BuildCr8ApicOff(KernelFormat format = KernelFormat.AoutKludge)
    {
        var k = new MultibootKernelBuilder();
        var c = k.EnterLongMode();
        var a = c.A;
        var bad = a.CreateLabel();
        var bad2 = a.CreateLabel();
        var next = a.CreateLabel();
        var done = a.CreateLabel();
        a.xor(r13d, r13d);
        a.mov(ecx, 0x1B); // IA32_APIC_BASE
        a.rdmsr();
        a.mov(r12d, eax);
        a.mov(r14d, edx);
        a.and(eax, ~0xC00); // EN and EXTD off: the APIC is hardware-disabled
        a.wrmsr();
        a.mov(eax, 0xA);
        a.mov(cr8, rax);
        a.mov(rbx, cr8);
        a.cmp(rbx, 0xA);
        a.jne(bad);
        c.Print("cr8 reads back while the apic is disabled ok\n");
        a.jmp(next);
        a.Label(ref bad);
        c.Print("cr8 reads back while the apic is disabled FAILED\n");
        a.inc(r13d);
        a.Label(ref next);
        a.@out(0x80, al); // a VM exit between the write and the next read
        a.mov(rbx, cr8);
        a.cmp(rbx, 0xA);
        a.jne(bad2);
        c.Print("cr8 kept across an exit ok\n");
        a.jmp(done);
        a.Label(ref bad2);
        c.Print("cr8 kept across an exit FAILED\n");
        a.inc(r13d);
        a.Label(ref done);
        a.xor(eax, eax);
        a.mov(cr8, rax);
        a.mov(eax, r12d);
        a.mov(edx, r14d);
        a.mov(ecx, 0x1B);
        a.wrmsr();
        a.mov(eax, r13d);
        c.DebugExitEax();
        return k.Build(format);
    }
}
