using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests.Smp;

/// <summary>
/// A 32-bit protected-mode Multiboot kernel for several CPUs: the BSP loads a flat GDT and an
/// IDT (every vector to an "unexpected" handler unless the program installs its own), enables
/// its local APIC, copies a real-mode trampoline below 1 MiB and starts the APs with INIT and
/// SIPI (SDM 8.4.4.1, the universal start-up algorithm without the delays, which KVM does not
/// need). Each AP switches to protected mode in the trampoline, gets its own stack and runs the
/// program's AP code. Layout besides <see cref="MultibootKernelBuilder"/>'s:
/// <list type="bullet">
/// <item>0x8000: the trampoline (SIPI vector 0x08); 0x8FF0: the AP entry's address;</item>
/// <item>0x116000: the 32-bit IDT; 0x116800: its pseudo-descriptor; 0x117000: APs online;</item>
/// <item>0x300000: per-CPU stacks, 4 KiB each, CPU i's below 0x300000 + (i+1)×4 KiB (so code finds its CPU index from ESP);</item>
/// <item>0x400000: the program's data (<see cref="DataAddress"/>), zero at boot.</item>
/// </list>
/// Register use: EBP holds the CPU index (= APIC ID) in the BSP's and APs' main code and in handlers.
/// </summary>
public sealed class SmpKernel
{
    public const uint TrampolineAddress = 0x8000;
    public const byte SipiVector = (byte)(TrampolineAddress >> 12);
    public const uint ApEntryPointer = 0x8FF0;
    public const uint IdtAddress = 0x116000, IdtrAddress = 0x116800, ApsOnline = 0x117000, DecimalBuffer = 0x117100;
    public const uint StacksBase = 0x300000, StackSize = 0x1000;
    public const uint DataAddress = 0x400000;

    /// <summary>Memory the layout needs: stacks for 255 CPUs end below 4 MiB, data starts there.</summary>
    public const int MinMemoryMiB = 8;

    /// <summary>Debug-exit value of the "unexpected interrupt" handler (process status 0xFD).</summary>
    public const uint UnexpectedInterruptExit = MultibootKernelBuilder.UnexpectedExceptionExit;

    private const int TrampolineGdtr = 0x40, TrampolineStub32 = 0x50;

    private readonly List<(byte Vector, Action<Assembler> Body, bool Eoi)> _handlers = [];
    private bool _booted;

    public SmpKernel(int vcpus, GuestApicMode mode)
    {
        if (vcpus < 1 || (mode == GuestApicMode.XApic && vcpus > 255))
        {
            throw new ArgumentOutOfRangeException(nameof(vcpus), vcpus, "1-255 CPUs in xAPIC mode, at least 1 in x2APIC mode");
        }

        Vcpus = vcpus;
        Kernel = new MultibootKernelBuilder();
        A = Kernel.Code32.A;
        Apic = new ApicOps(A, mode);
    }

    public int Vcpus { get; }

    public MultibootKernelBuilder Kernel { get; }

    /// <summary>The 32-bit code section (print helpers, debug exit).</summary>
    public GuestAsm Code => Kernel.Code32;

    public Assembler A { get; }

    public ApicOps Apic { get; }

    /// <summary>
    /// Installs an interrupt handler (before <see cref="Boot"/>). <paramref name="body"/> runs
    /// with all registers saved and EBP = the CPU index; EOI is sent after it.
    /// </summary>
    /// <param name="eoi">False for NMIs and exceptions, which the local APIC does not track in ISR.</param>
    public void Handler(byte vector, Action<Assembler> body, bool eoi = true)
    {
        if (_booted)
        {
            throw new InvalidOperationException("install handlers before Boot");
        }

        _handlers.Add((vector, body, eoi));
    }

    /// <summary>
    /// Emits the BSP's boot (GDT, IDT, APIC, APs started and waited for). The BSP then continues
    /// with the code emitted after this call, EBP = 0; each AP runs the code <paramref name="apMain"/>
    /// emits with EBP = its index, then halts with interrupts off.
    /// </summary>
    public void Boot(Action apMain)
    {
        _booted = true;
        var a = A;

        // Our own flat GDT and CS: the Multiboot loader's GDT is not ours to keep (its selectors
        // would be what IRET returns to). The far return pops the CALL's return address with CS 0x08.
        a.lgdt(__[(uint)MultibootKernelBuilder.GdtrAddress]);
        var farReturn = a.CreateLabel();
        var reloaded = a.CreateLabel();
        a.push(MultibootKernelBuilder.Code32Selector);
        a.call(farReturn);
        a.jmp(reloaded);
        a.Label(ref farReturn);
        a.retf();
        a.Label(ref reloaded);
        LoadDataSegments(a);
        a.mov(esp, StacksBase + StackSize);

        // 32-bit code cannot take a label's address as an operand (Iced has no absolute label
        // operands outside 64-bit mode), so each piece of code reached through a pointer sits
        // right after a CALL and its address is popped from the stack.
        EmitAddressOf(() =>
        {
            Code.Print("unexpected interrupt or exception\n");
            Code.DebugExit(UnexpectedInterruptExit);
        });

        // IDT: 256 interrupt gates (type 0xE, DPL 0, present) to the unexpected handler, then the program's.
        a.mov(edi, IdtAddress);
        a.mov(ecx, 256);
        var fill = a.CreateLabel();
        a.Label(ref fill);
        WriteGate(a);
        a.add(edi, 8);
        a.dec(ecx);
        a.jnz(fill);
        foreach (var (vector, body, eoi) in _handlers)
        {
            EmitAddressOf(() =>
            {
                a.pushad();
                CpuIndex(ebp);
                body(a);
                if (eoi)
                {
                    Apic.EndOfInterrupt();
                }

                a.popad();
                a.iretd();
            });
            a.mov(edi, IdtAddress + (vector * 8u));
            WriteGate(a);
        }

        a.mov(__word_ptr[(int)IdtrAddress], 256 * 8 - 1);
        a.mov(__dword_ptr[(int)IdtrAddress + 2], IdtAddress);
        a.lidt(__[(int)IdtrAddress]);
        Apic.Enable();

        if (Vcpus > 1)
        {
            var trampoline = AssembleTrampoline();
            for (var i = 0; i < trampoline.Length; i += 4)
            {
                a.mov(__dword_ptr[(int)(TrampolineAddress + i)], BitConverter.ToUInt32(trampoline, i));
            }

            EmitAddressOf(() =>
            {
                Apic.Enable();
                Apic.ReadId();
                a.inc(eax);
                a.shl(eax, 12);
                a.add(eax, StacksBase);
                a.mov(esp, eax);
                a.lidt(__[(int)IdtrAddress]);
                a.@lock.inc(__dword_ptr[(int)ApsOnline]);

                // Wait until every AP is online (and so in x2APIC/xAPIC mode) before apMain: an
                // IPI to an AP still in wait-for-SIPI, or not yet switched to x2APIC, is dropped
                // (its APIC is software-disabled or cannot match an x2APIC destination), which
                // lost a fast AP's whole first round once the APs really ran in parallel.
                var allOnline = a.CreateLabel();
                a.Label(ref allOnline);
                a.pause();
                a.cmp(__dword_ptr[(int)ApsOnline], Vcpus - 1);
                a.jb(allOnline);
                CpuIndex(ebp);
                apMain();
                var halt = a.CreateLabel();
                a.Label(ref halt);
                a.cli();
                a.hlt();
                a.jmp(halt);
            });
            a.mov(__dword_ptr[(int)ApEntryPointer], eax);
            Apic.SendIpi(0, ApicOps.ShorthandAllButSelf | ApicOps.Assert | ApicOps.Init);
            Apic.SendIpi(0, ApicOps.ShorthandAllButSelf | ApicOps.Assert | ApicOps.StartUp | SipiVector);
            var wait = a.CreateLabel();
            a.Label(ref wait);
            a.pause();
            a.cmp(__dword_ptr[(int)ApsOnline], Vcpus - 1);
            a.jb(wait);
        }

        a.xor(ebp, ebp);
    }

    /// <summary>Emits <paramref name="code"/> out of line (jumped over) and leaves its address in EAX.</summary>
    private void EmitAddressOf(Action code)
    {
        var after = A.CreateLabel();
        A.call(after);
        code();
        A.Label(ref after);
        A.pop(eax);
    }

    /// <summary><paramref name="reg"/> = this CPU's index, from ESP (each CPU's stack is its own 4 KiB slot).</summary>
    public void CpuIndex(AssemblerRegister32 reg)
    {
        A.lea(reg, __[esp - 1]);
        A.sub(reg, StacksBase);
        A.shr(reg, 12);
    }

    /// <summary>Prints EAX as an unsigned decimal number (BSP only: one buffer). Clobbers EAX, ECX, EDX, ESI.</summary>
    public void PrintDecimalEax()
    {
        var digit = A.CreateLabel();
        A.mov(ecx, 10);
        A.mov(esi, DecimalBuffer + 15);
        A.mov(__byte_ptr[esi], 0);
        A.Label(ref digit);
        A.xor(edx, edx);
        A.div(ecx);
        A.add(dl, (byte)'0');
        A.dec(esi);
        A.mov(__byte_ptr[esi], dl);
        A.test(eax, eax);
        A.jnz(digit);
        Code.PrintStringAtEsi();
    }

    /// <summary>Halts with interrupts enabled until an interrupt, forever (a CPU that only serves handlers).</summary>
    public void IdleForever()
    {
        var l = A.CreateLabel();
        A.Label(ref l);
        A.sti();
        A.hlt();
        A.jmp(l);
    }

    /// <summary>Spins (PAUSE) until the dword at <paramref name="address"/> is at least <paramref name="value"/> (unsigned).</summary>
    public void WaitAtLeast(uint address, uint value)
    {
        var l = A.CreateLabel();
        A.Label(ref l);
        A.pause();
        A.cmp(__dword_ptr[(int)address], value);
        A.jb(l);
    }

    /// <summary>
    /// Ends the run on the BSP: with EDI = 0 prints "<paramref name="name"/>: PASS" and exits with
    /// debug-exit value 0 (status 1), else prints "<paramref name="name"/>: FAIL (failures 0x..)"
    /// and exits with 1 (status 3).
    /// </summary>
    public void Verdict(string name)
    {
        var fail = A.CreateLabel();
        A.test(edi, edi);
        A.jnz(fail);
        Code.Print($"{name}: PASS\n");
        Code.DebugExit(0);
        A.Label(ref fail);
        Code.Print($"{name}: FAIL (failures 0x");
        Code.PrintHex(edi);
        Code.Print(")\n");
        Code.DebugExit(1);
    }

    /// <summary>EDI += 1 unless the dword at <paramref name="address"/> equals <paramref name="expected"/>.</summary>
    public void ExpectEqual(AssemblerMemoryOperand address, AssemblerRegister32 expected)
    {
        var ok = A.CreateLabel();
        A.cmp(address, expected);
        A.je(ok);
        A.inc(edi);
        A.Label(ref ok);
    }

    /// <summary>EDI += 1 unless the dword at <paramref name="address"/> equals <paramref name="expected"/>.</summary>
    public void ExpectEqual(AssemblerMemoryOperand address, uint expected)
    {
        var ok = A.CreateLabel();
        A.cmp(address, expected);
        A.je(ok);
        A.inc(edi);
        A.Label(ref ok);
    }

    /// <summary>Ends the BSP's code with a halt loop and builds the image.</summary>
    public byte[] Build(KernelFormat format = KernelFormat.AoutKludge)
    {
        if (!_booted)
        {
            throw new InvalidOperationException("call Boot first");
        }

        // Whatever the BSP's code did last, nothing runs past it.
        Code.HaltForever();
        return Kernel.Build(format);
    }

    private static void LoadDataSegments(Assembler a)
    {
        a.mov(ax, MultibootKernelBuilder.DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
    }

    /// <summary>EAX = handler address, EDI = the gate: offset 15:0, selector, 0x8E00 (32-bit interrupt gate, present), offset 31:16. Clobbers EBX.</summary>
    private static void WriteGate(Assembler a)
    {
        a.mov(__word_ptr[edi], ax);
        a.mov(__word_ptr[edi + 2], MultibootKernelBuilder.Code32Selector);
        a.mov(__word_ptr[edi + 4], 0x8E00);
        a.mov(ebx, eax);
        a.shr(ebx, 16);
        a.mov(__word_ptr[edi + 6], bx);
    }

    /// <summary>
    /// The AP's first code: real mode at CS = 0x0800 (SIPI vector 8), IP = 0. Loads the kernel's
    /// GDT, sets CR0.PE and far-jumps (o32, so the offset is 32 bits) into a 32-bit stub that loads
    /// the data segments and jumps to the address the BSP left at <see cref="ApEntryPointer"/>.
    /// </summary>
    private static byte[] AssembleTrampoline()
    {
        var image = new byte[0x80];
        var real = new Assembler(16);
        real.cli();
        real.mov(ax, cs);
        real.mov(ds, ax);
        real.mov(bx, TrampolineGdtr);
        real.lgdt(__[bx]);
        real.mov(eax, cr0);
        real.or(eax, 1);
        real.mov(cr0, eax);
        real.db(0x66, 0xEA);
        real.dd(TrampolineAddress + TrampolineStub32);
        real.dw(MultibootKernelBuilder.Code32Selector);
        var code16 = Assemble(real, 0);
        if (code16.Length > TrampolineGdtr)
        {
            throw new InvalidOperationException("trampoline too long");
        }

        code16.CopyTo(image, 0);
        BitConverter.GetBytes((ushort)0x1F).CopyTo(image, TrampolineGdtr);
        BitConverter.GetBytes((uint)MultibootKernelBuilder.GdtAddress).CopyTo(image, TrampolineGdtr + 2);

        var stub = new Assembler(32);
        LoadDataSegments(stub);
        stub.jmp(__dword_ptr[(int)ApEntryPointer]);
        Assemble(stub, TrampolineAddress + TrampolineStub32).CopyTo(image, TrampolineStub32);
        return image;
    }

    private static byte[] Assemble(Assembler a, ulong address)
    {
        var writer = new Writer();
        a.Assemble(writer, address);
        return [.. writer.Bytes];
    }

    private sealed class Writer : CodeWriter
    {
        public List<byte> Bytes { get; } = [];

        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
