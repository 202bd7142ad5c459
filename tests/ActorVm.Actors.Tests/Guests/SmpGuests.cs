using ActorVm.Hardware.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.Guests;

/// <summary>
/// Multi-vCPU Multiboot kernels (32-bit protected mode, no paging) that start their APs with
/// INIT/SIPI through a real-mode trampoline and then IPI each other. The serial output is
/// deterministic by construction: at any time only one CPU prints, and the next one prints only
/// after an IPI from it (the APIC bus orders the two). Checked against QEMU's output (Golden/).
/// <para>Layout on top of <see cref="MultibootKernelBuilder"/>'s: the trampoline is copied to
/// 0x8000 (SIPI vector 8); a 32-bit IDT at 0x116000; variables at 0x114100; AP stacks below
/// 0x90000, 4 KiB each by APIC ID.</para>
/// </summary>
public static class SmpGuests
{
    public const int Vcpus = 4;
    public const uint TrampolineAddress = 0x8000;
    public const byte SipiVector = (byte)(TrampolineAddress >> 12);
    public const uint IdtAddress = 0x116000;
    public const uint IdtrAddress = 0x114080;
    public const uint ApStackTop = 0x90000;

    /// <summary>Guest variables (dwords).</summary>
    public const uint VarArrived = 0x114100, VarAcks = 0x114104, VarReporter = 0x114108,
        VarBroadcastAll = 0x11410C, VarBroadcastOthers = 0x114110, VarLowestPriority = 0x114114,
        VarNmis = 0x114118, VarIrq46 = 0x11411C;

    /// <summary>debug-exit value at the end (QEMU status (value &lt;&lt; 1) | 1 = 0x21).</summary>
    public const uint DoneExit = 0x10;

    private const uint ApicBase = 0xFEE00000;
    private const uint ApicId = ApicBase + 0x20, ApicEoi = ApicBase + 0xB0, ApicLdr = ApicBase + 0xD0, ApicLint0 = ApicBase + 0x350,
        ApicSvr = ApicBase + 0xF0, ApicIcrLow = ApicBase + 0x300, ApicIcrHigh = ApicBase + 0x310;

    /// <summary>ICR low dwords (SDM 11.6.1): delivery mode 10:8, logical 11, assert 14, shorthand 19:18.</summary>
    private const uint IcrInitAllButSelf = 0x000C4500, IcrSipiAllButSelf = 0x000C4600 | SipiVector,
        IcrSelf = 0x00040000, IcrAllIncludingSelf = 0x00080000, IcrAllButSelf = 0x000C0000,
        IcrLowestPriorityLogical = 0x00000900, IcrNmi = 0x00004400;

    /// <summary>
    /// The xAPIC (MMIO) program, <c>smp-ipi</c>:
    /// <list type="number">
    /// <item>BSP: IDT, APIC on, trampoline copied, INIT then SIPI to all-but-self; waits for 3 APs.</item>
    /// <item>For each AP: fixed IPI 0x40 by physical destination; the AP prints, sends itself 0x41
    /// with the ICR "self" shorthand; 0x41 prints and answers the BSP with a fixed IPI 0x42, whose
    /// handler prints who answered.</item>
    /// <item>Broadcasts: 0x43 to all-but-self (3 handlers run), 0x44 to all-including-self (4).</item>
    /// <item>Lowest priority 0x45 to the logical group of the APs: exactly one takes it (which one
    /// is model specific, SDM 11.6.2.4, so only the count is printed).</item>
    /// <item>With IF=0 the BSP sends itself a fixed IRQ 0x46 and an NMI (physical destination 0):
    /// the NMI is taken at once, 0x46 after STI. Under ActorVm the NMI's entry is forced
    /// (-EBUSY: an IRQ is pending and nothing more can be injected).</item>
    /// </list>
    /// </summary>
    public static byte[] BuildIpi(KernelFormat format = KernelFormat.Elf32) => Build(x2Apic: false, format);

    /// <summary>
    /// <see cref="BuildIpi"/> in x2APIC mode, <c>smp-x2apic</c>: every CPU switches its own APIC to
    /// x2APIC (IA32_APIC_BASE.EXTD); ICR writes are WRMSR 0x830 (the MSR_WRITE fastpath), the
    /// self-IPI is x2APIC SELF_IPI (MSR 0x83F), EOI is MSR 0x80B. It prints the same text.
    /// </summary>
    public static byte[] BuildX2Apic(KernelFormat format = KernelFormat.Elf32) => Build(x2Apic: true, format);

    private static byte[] Build(bool x2Apic, KernelFormat format)
    {
        // Two passes: 32-bit Iced code cannot take a label's address (its label operands are
        // RIP-relative), so pass 1 learns the addresses and pass 2 uses them as immediates; every
        // such use is a MOV r32, imm32 of fixed length, so the layout does not change.
        var layout = new Layout();
        layout.Bind(EmitIpi(layout, x2Apic).Code32);
        layout.Resolve();
        return EmitIpi(layout, x2Apic).Build(format);
    }

    private static MultibootKernelBuilder EmitIpi(Layout layout, bool x2Apic)
    {
        var k = new MultibootKernelBuilder();
        var c = k.Code32;
        var a = c.A;
        layout.Attach(a);
        var apic = new ApicAccess(x2Apic);
        var h = new Handlers(a, layout, apic);
        var (trampolineBytes, pointerOffset) = BuildTrampoline();

        ProtectedModeSetup(a, layout);
        BuildIdt(a, h, layout);
        apic.Enable(a);
        c.Print("smp: bsp up\n");

        // Copy the trampoline below 1 MiB and point its far jump at the 32-bit AP entry.
        a.mov(esi, layout.Address("trampoline"));
        a.mov(edi, TrampolineAddress);
        a.mov(ecx, trampolineBytes.Length);
        a.cld();
        a.rep.movsb();
        a.mov(eax, layout.Address("ap_entry"));
        a.mov(__dword_ptr[TrampolineAddress + pointerOffset], eax);

        // INIT, then one SIPI (SDM 8.4.4.1 sends two with delays; neither QEMU nor ActorVm needs them).
        apic.Icr(a, 0, IcrInitAllButSelf);
        apic.Icr(a, 0, IcrSipiAllButSelf);
        WaitFor(a, VarArrived, Vcpus - 1);
        c.Print("smp: 3 aps up\n");

        // Round trips: BSP → AP (physical), AP → itself (shorthand), AP → BSP (physical).
        a.sti();
        for (var ap = 1; ap < Vcpus; ap++)
        {
            apic.Icr(a, (uint)ap, 0x40);
            WaitFor(a, VarAcks, ap);
        }

        c.Print("smp: broadcast to all-but-self\n");
        apic.Icr(a, 0, IcrAllButSelf | 0x43);
        WaitFor(a, VarBroadcastOthers, Vcpus - 1);
        c.Print("smp: broadcast to all-including-self\n");
        apic.Icr(a, 0, IcrAllIncludingSelf | 0x44);
        WaitFor(a, VarBroadcastAll, Vcpus);
        c.Print("smp: all-but-self handlers ");
        a.mov(eax, __dword_ptr[VarBroadcastOthers]);
        c.PrintHexEax();
        c.Print(", all-including-self handlers ");
        a.mov(eax, __dword_ptr[VarBroadcastAll]);
        c.PrintHexEax();
        c.Print("\n");

        // Lowest priority to the APs' logical group (LDR bit = 1 << APIC ID, flat model).
        apic.Icr(a, 0x0E, IcrLowestPriorityLogical | 0x45);
        WaitFor(a, VarLowestPriority, 1);
        Pause(a, 200_000); // a second (wrong) delivery would land meanwhile
        c.Print("smp: lowest-priority 0x45 taken ");
        a.mov(eax, __dword_ptr[VarLowestPriority]);
        c.PrintHexEax();
        c.Print(" time(s)\n");

        // An NMI while a fixed IRQ waits behind IF=0: both are accepted by the BSP's own LAPIC
        // before it answers the ICR write, so the next entry injects the NMI with the IRQ still
        // pending: KVM's -EBUSY, a forced immediate exit. Then STI lets the IRQ in.
        a.cli();
        apic.Icr(a, 0, 0x46);
        apic.Icr(a, 0, IcrNmi);
        WaitFor(a, VarNmis, 1);
        a.sti();
        WaitFor(a, VarIrq46, 1);
        c.DebugExit(DoneExit);

        // ---- AP: 32-bit entry from the trampoline ----
        layout.Place("ap_entry");
        a.mov(ax, MultibootKernelBuilder.DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.lgdt(__[(uint)MultibootKernelBuilder.GdtrAddress]);
        apic.Enable(a); // no stack needed yet
        apic.ReadId(a);
        a.shl(eax, 12);
        a.mov(esp, ApStackTop);
        a.sub(esp, eax);
        a.lidt(__[IdtrAddress]);
        a.@lock.inc(__dword_ptr[VarArrived]);
        a.sti();
        c.HaltForever();

        h.Emit(c);
        layout.Place("trampoline");
        a.db(trampolineBytes);
        return k;
    }

    /// <summary>Reload GDT (the builder's flat 0x08/0x10 descriptors) and the segment registers.</summary>
    private static void ProtectedModeSetup(Assembler a, Layout layout)
    {
        a.lgdt(__[(uint)MultibootKernelBuilder.GdtrAddress]);
        // Far return to the next instruction: CS must hold a selector of this GDT before the
        // first interrupt (IRET reloads the interrupted CS).
        a.push(MultibootKernelBuilder.Code32Selector);
        a.mov(eax, layout.Address("reload"));
        a.push(eax);
        a.retf();
        layout.Place("reload");
        a.mov(ax, MultibootKernelBuilder.DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
    }

    /// <summary>Interrupt gates (SDM figure 6-2: present, DPL 0, 32-bit, selector 0x08) for the handlers' vectors.</summary>
    private static void BuildIdt(Assembler a, Handlers h, Layout layout)
    {
        // Every vector first goes to the "unexpected" handler (an exception, or an interrupt
        // nobody asked for, would otherwise triple-fault and make QEMU reboot).
        a.mov(eax, layout.Address(Handlers.Unexpected));
        Gate(a);
        a.mov(edi, IdtAddress);
        a.mov(ecx, 256);
        var fill = a.CreateLabel();
        a.Label(ref fill);
        a.mov(__dword_ptr[edi], eax);
        a.mov(__dword_ptr[edi + 4], edx);
        a.add(edi, 8);
        a.dec(ecx);
        a.jnz(fill);
        foreach (var vector in h.Vectors)
        {
            a.mov(eax, layout.Address(Handlers.Name(vector)));
            Gate(a);
            a.mov(__dword_ptr[IdtAddress + (vector * 8u)], eax);
            a.mov(__dword_ptr[IdtAddress + (vector * 8u) + 4], edx);
        }

        a.mov(__word_ptr[IdtrAddress], 256 * 8 - 1);
        a.mov(__dword_ptr[IdtrAddress + 2], IdtAddress);
        a.lidt(__[IdtrAddress]);
    }

    /// <summary>EAX = handler address → EDX:EAX = its interrupt gate.</summary>
    private static void Gate(Assembler a)
    {
        a.mov(edx, eax);
        a.and(eax, 0xFFFF);
        a.or(eax, MultibootKernelBuilder.Code32Selector << 16);
        a.and(edx, unchecked((int)0xFFFF0000));
        a.or(edx, 0x8E00);
    }

    /// <summary>The local APIC through MMIO (xAPIC) or MSRs (x2APIC, SDM 11.12).</summary>
    private sealed class ApicAccess(bool x2Apic)
    {
        /// <summary>
        /// Hardware- and software-enabled (SVR 0x1FF), LINT0 masked (firmware points it at the
        /// PIC on the BSP), the PICs masked: only IPIs interrupt these CPUs. xAPIC: flat logical
        /// model with LDR = 1 &lt;&lt; (24 + APIC ID); x2APIC derives LDR from the ID (bit ID in cluster 0).
        /// </summary>
        public void Enable(Assembler a)
        {
            a.mov(al, 0xFF);
            a.@out(0xA1, al);
            a.@out(0x21, al);
            if (x2Apic)
            {
                a.mov(ecx, 0x1B);
                a.rdmsr();
                a.or(eax, 0xC00); // EN | EXTD
                a.wrmsr();
                Wrmsr(a, 0x835, 0x10700);
                Wrmsr(a, 0x80F, 0x1FF);
                return;
            }

            a.mov(__dword_ptr[ApicLint0], 0x10700);
            a.mov(__dword_ptr[ApicSvr], 0x1FF);
            ReadId(a);
            a.lea(ecx, __[eax + 24]);
            a.mov(eax, 1);
            a.shl(eax, cl);
            a.mov(__dword_ptr[ApicLdr], eax);
        }

        /// <summary>EAX = this CPU's APIC ID (clobbers ECX/EDX in x2APIC mode).</summary>
        public void ReadId(Assembler a)
        {
            if (x2Apic)
            {
                a.mov(ecx, 0x802);
                a.rdmsr();
                return;
            }

            a.mov(eax, __dword_ptr[ApicId]);
            a.shr(eax, 24);
        }

        /// <summary>Sends an IPI: ICR high (destination) then ICR low, or one WRMSR of ICR in x2APIC mode.</summary>
        public void Icr(Assembler a, uint destination, uint low)
        {
            if (x2Apic)
            {
                a.mov(ecx, 0x830);
                a.mov(edx, destination);
                a.mov(eax, low);
                a.wrmsr();
                return;
            }

            a.mov(__dword_ptr[ApicIcrHigh], destination << 24);
            a.mov(__dword_ptr[ApicIcrLow], low);
        }

        /// <summary>A fixed self-IPI: the ICR "self" shorthand, or x2APIC SELF_IPI (SDM 11.12.11).</summary>
        public void SelfIpi(Assembler a, byte vector)
        {
            if (x2Apic)
            {
                Wrmsr(a, 0x83F, vector);
                return;
            }

            a.mov(__dword_ptr[ApicIcrLow], IcrSelf | vector);
        }

        public void Eoi(Assembler a)
        {
            if (x2Apic)
            {
                Wrmsr(a, 0x80B, 0);
                return;
            }

            a.mov(__dword_ptr[ApicEoi], 0);
        }

        private static void Wrmsr(Assembler a, uint msr, uint value)
        {
            a.mov(ecx, msr);
            a.mov(eax, value);
            a.xor(edx, edx);
            a.wrmsr();
        }
    }

    /// <summary>Spins (PAUSE) until the dword at <paramref name="variable"/> is at least <paramref name="value"/>.</summary>
    private static void WaitFor(Assembler a, uint variable, int value)
    {
        var loop = a.CreateLabel();
        var done = a.CreateLabel();
        a.Label(ref loop);
        a.cmp(__dword_ptr[variable], value);
        a.jae(done);
        a.pause();
        a.jmp(loop);
        a.Label(ref done);
    }

    private static void Pause(Assembler a, int iterations)
    {
        var loop = a.CreateLabel();
        a.mov(ecx, iterations);
        a.Label(ref loop);
        a.pause();
        a.dec(ecx);
        a.jnz(loop);
    }

    /// <summary>
    /// The real-mode trampoline (SDM 8.4.4.1 / 9.9.1): CLI, load a GDT of its own, set CR0.PE,
    /// far-jump through a pointer the BSP patches at <c>pointerOffset</c>. Position: 0x8000.
    /// </summary>
    private static (byte[] Bytes, uint PointerOffset) BuildTrampoline()
    {
        // Data at fixed offsets after the code (Iced's labels are RIP-relative, which 16-bit code lacks).
        const uint gdtOffset = 0x40, gdtrOffset = 0x58, pointerOffset = 0x60;
        var a = new Assembler(16);
        a.cli();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.lgdt(__[TrampolineAddress + gdtrOffset]);
        a.mov(eax, cr0);
        a.or(al, 1);
        a.mov(cr0, eax);
        a.jmp(__fword_ptr[TrampolineAddress + pointerOffset]);

        var writer = new Bytes();
        a.Assemble(writer, TrampolineAddress);
        var bytes = new byte[pointerOffset + 6];
        var code = writer.ToArray();
        if (code.Length > gdtOffset)
        {
            throw new InvalidOperationException("trampoline code overlaps its data");
        }

        code.CopyTo(bytes, 0);
        BitConverter.TryWriteBytes(bytes.AsSpan((int)gdtOffset + 8), 0x00CF9A000000FFFFUL);
        BitConverter.TryWriteBytes(bytes.AsSpan((int)gdtOffset + 16), 0x00CF92000000FFFFUL);
        BitConverter.TryWriteBytes(bytes.AsSpan((int)gdtrOffset), (ushort)23);
        BitConverter.TryWriteBytes(bytes.AsSpan((int)gdtrOffset + 2), TrampolineAddress + gdtOffset);
        BitConverter.TryWriteBytes(bytes.AsSpan((int)pointerOffset + 4), (ushort)MultibootKernelBuilder.Code32Selector);
        return (bytes, pointerOffset); // the BSP patches the 32-bit offset at pointerOffset
    }

    /// <summary>The interrupt handlers; each saves all registers, EOIs, returns with IRETD.</summary>
    private sealed class Handlers
    {
        private readonly Assembler _a;
        private readonly Layout _layout;
        private readonly ApicAccess _apic;

        public Handlers(Assembler a, Layout layout, ApicAccess apic)
        {
            _a = a;
            _layout = layout;
            _apic = apic;
        }

        public byte[] Vectors { get; } = [2, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46];

        public const string Unexpected = "unexpected";

        public static string Name(byte vector) => $"vector_{vector:x2}";

        public void Emit(GuestAsm c)
        {
            var a = _a;
            var apic = _apic;
            _layout.Place(Unexpected);
            c.Print("unexpected interrupt or exception\n");
            c.DebugExit(MultibootKernelBuilder.UnexpectedExceptionExit);

            foreach (var vector in Vectors)
            {
                _layout.Place(Name(vector));
                a.pushad();
                switch (vector)
                {
                    case 2:
                        c.Print("bsp: nmi with irq 0x46 pending\n");
                        a.@lock.inc(__dword_ptr[VarNmis]);
                        a.popad();
                        a.iretd(); // no EOI: NMIs do not set ISR
                        continue;
                    case 0x46:
                        c.Print("bsp: irq 0x46 after sti\n");
                        a.@lock.inc(__dword_ptr[VarIrq46]);
                        break;
                    case 0x40:
                        // On an AP, from the BSP: print, then a self-IPI through the ICR shorthand.
                        // 0x41 is in the same priority class as 0x40: it waits for this EOI.
                        PrintApicId(c, "ap ", ": ipi 0x40 from bsp\n");
                        apic.SelfIpi(a, 0x41);
                        break;
                    case 0x41:
                        PrintApicId(c, "ap ", ": self-ipi 0x41\n");
                        apic.ReadId(a);
                        a.mov(__dword_ptr[VarReporter], eax);
                        apic.Icr(a, 0, 0x42);
                        break;
                    case 0x42:
                        c.Print("bsp: ipi 0x42 from ap ");
                        a.mov(eax, __dword_ptr[VarReporter]);
                        c.PrintHexEax();
                        c.Print("\n");
                        a.@lock.inc(__dword_ptr[VarAcks]);
                        break;
                    case 0x43:
                        a.@lock.inc(__dword_ptr[VarBroadcastOthers]);
                        break;
                    case 0x44:
                        a.@lock.inc(__dword_ptr[VarBroadcastAll]);
                        break;
                    case 0x45:
                        apic.ReadId(a);
                        a.mov(__dword_ptr[VarReporter], eax);
                        a.@lock.inc(__dword_ptr[VarLowestPriority]);
                        break;
                }

                apic.Eoi(a);
                a.popad();
                a.iretd();
            }
        }

        private void PrintApicId(GuestAsm c, string before, string after)
        {
            c.Print(before);
            _apic.ReadId(_a);
            c.PrintHexEax();
            c.Print(after);
        }
    }

    /// <summary>Named labels whose addresses pass 1 learns and pass 2 emits as immediates.</summary>
    private sealed class Layout
    {
        private readonly Dictionary<string, Label> _labels = [];
        private readonly Dictionary<string, uint> _addresses = [];
        private Assembler? _a;
        private GuestAsm? _section;

        public void Attach(Assembler a) => _a = a;

        /// <summary>Defines the named label at the next instruction.</summary>
        public void Place(string name)
        {
            var l = _a!.CreateLabel(name);
            _a.Label(ref l);
            _labels[name] = l; // Label is a struct: keep the copy that knows its instruction
        }

        /// <summary>The label's address from pass 1 (0 during pass 1).</summary>
        public uint Address(string name) => _addresses.GetValueOrDefault(name);

        public void Bind(GuestAsm section) => _section = section;

        public void Resolve()
        {
            var (_, result) = _section!.Finish();
            foreach (var (name, label) in _labels)
            {
                _addresses[name] = (uint)result.GetLabelRIP(label);
            }

            _labels.Clear();
        }
    }

    private sealed class Bytes : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public override void WriteByte(byte value) => _bytes.Add(value);

        public byte[] ToArray() => [.. _bytes];
    }
}
