using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

/// <summary>
/// Building blocks for the platform guests (<see cref="PlatformGuests"/>): 32-bit protected-mode
/// code without paging (so the APIC page, the IOAPIC and pc-testdev's iomem are reachable at
/// their physical addresses), a 32-bit IDT built at run time, counting interrupt handlers per
/// CPU and vector, the AP start-up trampoline at physical 0, and port/MMIO helpers. Everything is
/// assembled with Iced; nothing is taken from kvm-unit-tests (only the behaviour its kernels
/// rely on: QEMU pc devices, INIT + SIPI vector 0 to all-excluding-self).
/// </summary>
public sealed class PcGuestKit
{
    public const uint IdtAddress = 0x200000;
    public const uint IdtrAddress = 0x200800;

    /// <summary>dword counters [cpu][vector], 0x400 bytes per CPU (APIC IDs 0-15).</summary>
    public const uint CountersAddress = 0x210000;

    /// <summary>Scratch variables: APs started, a flag the STI-shadow test writes, what a handler saw.</summary>
    public const uint VarApsUp = 0x201000, VarFlag = 0x201004, VarSeen = 0x201008, VarCpus = 0x20100C, VarFailures = 0x201010,
        VarApEntry = 0x201014;

    /// <summary>Handler addresses, one dword per <see cref="Handler"/> call, stored as the code runs (32-bit Iced has no absolute label operand).</summary>
    public const uint HandlerTable = 0x201100;

    public const uint ApicBase = 0xFEE00000;
    public const uint ApicId = ApicBase + 0x20, ApicTpr = ApicBase + 0x80, ApicEoi = ApicBase + 0xB0, ApicLdr = ApicBase + 0xD0,
        ApicDfr = ApicBase + 0xE0, ApicSvr = ApicBase + 0xF0, ApicIcrLow = ApicBase + 0x300, ApicIcrHigh = ApicBase + 0x310,
        ApicLvtTimer = ApicBase + 0x320, ApicTmict = ApicBase + 0x380, ApicTmcct = ApicBase + 0x390, ApicTdcr = ApicBase + 0x3E0;

    public const uint IoApicBase = 0xFEC00000;

    /// <summary>
    /// AP stacks: 4 KiB each below 0x300000 + (id + 1) * 0x1000, so all 255 xAPIC IDs fit in
    /// RAM above the kit's tables (below 1 MiB, IDs from 47 on reached the VGA hole at 0xA0000,
    /// where pushes are lost and the first IRET triple-faulted).
    /// </summary>
    public const uint ApStackBase = 0x300000;

    private readonly List<int> _gates = [];
    private bool _apEntry;

    public PcGuestKit(MultibootKernelBuilder kernel)
    {
        Kernel = kernel;
        C = kernel.Code32;
    }

    public MultibootKernelBuilder Kernel { get; }

    public GuestAsm C { get; }

    public Assembler A => C.A;

    /// <summary>Counter address of <paramref name="vector"/> on CPU <paramref name="cpu"/>.</summary>
    public static uint Counter(int cpu, int vector) => CountersAddress + (uint)(cpu * 0x400) + (uint)(vector * 4);

    /// <summary>
    /// Emits a handler for <paramref name="vector"/> that counts in [cpu][vector] (the CPU from
    /// its APIC ID), runs <paramref name="body"/> (registers are saved), writes EOI unless it is
    /// the NMI, and returns. Its gate is installed by <see cref="LoadIdt"/>.
    /// </summary>
    public void Handler(int vector, Action<Assembler>? body = null, bool eoi = true)
    {
        // CALL over the body pushes the entry's address; the code after it stores that in the
        // handler table for BuildIdt.
        var a = A;
        var after = a.CreateLabel();
        a.call(after);
        a.pushad();
        a.mov(eax, __dword_ptr[ApicId]);
        a.shr(eax, 24);
        a.shl(eax, 10);
        a.@lock.inc(__dword_ptr[eax + (int)Counter(0, vector)]);
        body?.Invoke(a);
        if (eoi)
        {
            a.mov(__dword_ptr[ApicEoi], 0);
        }

        a.popad();
        a.iretd();
        a.Label(ref after);
        a.pop(eax);
        a.mov(__dword_ptr[HandlerTable + (uint)(_gates.Count * 4)], eax);
        _gates.Add(vector);
    }

    /// <summary>
    /// Emits a handler for <paramref name="vector"/> made only of <paramref name="body"/>, which
    /// sees the CPU's own frame (error code first where the vector has one) and must end in IRETD.
    /// </summary>
    public void RawHandler(int vector, Action<Assembler> body)
    {
        var a = A;
        var after = a.CreateLabel();
        a.call(after);
        body(a);
        a.Label(ref after);
        a.pop(eax);
        a.mov(__dword_ptr[HandlerTable + (uint)(_gates.Count * 4)], eax);
        _gates.Add(vector);
    }

    /// <summary>Writes the gates of every handler emitted so far into the IDT and loads IDTR (call on every CPU; the BSP builds, APs only load).</summary>
    public void BuildIdt()
    {
        var a = A;
        for (var i = 0; i < _gates.Count; i++)
        {
            var gate = (int)(IdtAddress + (uint)(_gates[i] * 8));
            a.mov(eax, __dword_ptr[HandlerTable + (uint)(i * 4)]);
            a.mov(__word_ptr[gate], ax);
            a.mov(__word_ptr[gate + 2], MultibootKernelBuilder.Code32Selector);
            a.mov(__word_ptr[gate + 4], 0x8E00); // present, DPL 0, 32-bit interrupt gate
            a.shr(eax, 16);
            a.mov(__word_ptr[gate + 6], ax);
        }

        a.mov(__word_ptr[(int)IdtrAddress], 256 * 8 - 1);
        a.mov(__dword_ptr[(int)IdtrAddress + 2], IdtAddress);
        LoadIdt();
    }

    public void LoadIdt() => A.lidt(__[(int)IdtrAddress]);

    /// <summary>Masks every 8259 line: a BIOS may have left the PIT's IRQ 0 unmasked behind LINT0's ExtINT.</summary>
    public void MaskPic()
    {
        A.mov(al, 0xFF);
        A.@out(0x21, al);
        A.@out(0xA1, al);
    }

    /// <summary>Software-enables this CPU's local APIC (SVR = 0x1FF, spurious vector 0xFF) and sets a flat logical ID of 1 &lt;&lt; APIC ID.</summary>
    public void EnableApic()
    {
        var a = A;
        a.mov(__dword_ptr[ApicSvr], 0x1FF);
        a.mov(__dword_ptr[ApicDfr], unchecked((int)0xFFFFFFFF));
        a.mov(ecx, __dword_ptr[ApicId]);
        a.shr(ecx, 24);
        a.mov(eax, 1);
        a.shl(eax, cl);
        a.shl(eax, 24);
        a.mov(__dword_ptr[ApicLdr], eax);
    }

    /// <summary>Writes ICR (high then low) and waits for the delivery status to go idle.</summary>
    public void SendIpi(uint high, uint low)
    {
        var a = A;
        a.mov(__dword_ptr[ApicIcrHigh], high);
        a.mov(__dword_ptr[ApicIcrLow], low);
        var wait = a.CreateLabel();
        a.Label(ref wait);
        a.test(__dword_ptr[ApicIcrLow], 1 << 12);
        a.jnz(wait);
    }

    /// <summary>EAX = fw_cfg item <paramref name="key"/>'s first four bytes (little endian), through ports 0x510/0x511.</summary>
    public void ReadFwCfg32(ushort key)
    {
        var a = A;
        a.mov(dx, Devices.FwCfg.SelectorPort);
        a.mov(ax, key);
        a.@out(dx, ax);
        a.mov(dx, Devices.FwCfg.DataPort);
        a.xor(ebx, ebx);
        for (var i = 0; i < 4; i++)
        {
            a.@in(al, dx);
            a.movzx(eax, al);
            a.shl(eax, (byte)(8 * i));
            a.or(ebx, eax);
        }

        a.mov(eax, ebx);
    }

    /// <summary>AL = CMOS register <paramref name="index"/> (NMI left enabled).</summary>
    public void ReadCmos(byte index)
    {
        A.mov(al, index);
        A.@out(0x70, al);
        A.@in(al, 0x71);
    }

    /// <summary>Writes a 64-bit IOAPIC redirection entry for <paramref name="pin"/>.</summary>
    public void IoApicRoute(int pin, uint low, uint high)
    {
        var a = A;
        a.mov(__dword_ptr[IoApicBase], 0x10 + (2 * pin) + 1);
        a.mov(__dword_ptr[IoApicBase + 0x10], high);
        a.mov(__dword_ptr[IoApicBase], 0x10 + (2 * pin));
        a.mov(__dword_ptr[IoApicBase + 0x10], low);
    }

    /// <summary>Drives ISA/GSI line <paramref name="line"/> through pc-testdev's port 0x2000 + line.</summary>
    public void SetIrqLine(int line, bool level)
    {
        A.mov(dx, (ushort)(Devices.PcTestDev.IrqPortBase + line));
        A.mov(al, level ? (byte)1 : (byte)0);
        A.@out(dx, al);
    }

    /// <summary>
    /// With IF=0 around the test, halts (STI; HLT, atomic thanks to the STI shadow) until the
    /// dword at <paramref name="address"/> is at least <paramref name="atLeast"/>; leaves IF=0.
    /// </summary>
    public void HaltUntil(uint address, uint atLeast)
    {
        var a = A;
        var loop = a.CreateLabel();
        var done = a.CreateLabel();
        a.Label(ref loop);
        a.cli();
        a.cmp(__dword_ptr[address], atLeast);
        a.jae(done);
        a.sti();
        a.hlt();
        a.jmp(loop);
        a.Label(ref done);
    }

    /// <summary>Spins (PAUSE) until the dword at <paramref name="address"/> is at least <paramref name="atLeast"/> or <paramref name="spins"/> run out; ZF=0/CF=0 (JAE) on success.</summary>
    public void SpinUntil(uint address, uint atLeast, int spins = 20_000_000)
    {
        var a = A;
        var loop = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(ecx, spins);
        a.Label(ref loop);
        a.cmp(__dword_ptr[address], atLeast);
        a.jae(done);
        a.pause();
        a.dec(ecx);
        a.jnz(loop);
        a.cmp(__dword_ptr[address], atLeast);
        a.Label(ref done);
    }

    /// <summary>Busy-waits <paramref name="iterations"/> PAUSE iterations (ECX clobbered).</summary>
    public void Delay(int iterations)
    {
        var a = A;
        var loop = a.CreateLabel();
        a.mov(ecx, iterations);
        a.Label(ref loop);
        a.pause();
        a.dec(ecx);
        a.jnz(loop);
    }

    /// <summary>Prints "<paramref name="name"/> ok" when the condition code (<paramref name="jumpIfBad"/> not taken) holds, else "<paramref name="name"/> FAILED" and counts a failure.</summary>
    public void Check(string name, Action<Assembler, Label> jumpIfBad)
    {
        var a = A;
        var bad = a.CreateLabel();
        var done = a.CreateLabel();
        jumpIfBad(a, bad);
        C.Print(name + " ok\n");
        a.jmp(done);
        a.Label(ref bad);
        C.Print(name + " FAILED\n");
        a.inc(__dword_ptr[VarFailures]);
        a.Label(ref done);
    }

    /// <summary>Checks that the dword at <paramref name="address"/> equals <paramref name="expected"/>.</summary>
    public void CheckEquals(string name, uint address, uint expected) =>
        Check(name, (a, bad) =>
        {
            a.cmp(__dword_ptr[address], expected);
            a.jne(bad);
        });

    /// <summary>Ends the test: debug-exit value 0 (status 1) with no failures, else 1 (status 3).</summary>
    public void Finish()
    {
        var a = A;
        var fail = a.CreateLabel();
        a.cmp(__dword_ptr[VarFailures], 0);
        a.jne(fail);
        C.Print("PASS\n");
        C.DebugExit(0);
        a.Label(ref fail);
        C.Print("FAIL\n");
        C.DebugExit(1);
    }

    /// <summary>
    /// Writes the AP trampoline at physical 0 (emitted by <see cref="EmitApEntry"/>, which must run first; the five real-mode instructions: MOV EAX,CR0;
    /// OR EAX,1; MOV CR0,EAX; LGDT [0x20]; JMP FAR 0x08:ap32 — protection on before the GDT is
    /// loaded, as the test kernels do it) with its GDTR copy at 0x20, sends INIT and then SIPI
    /// vector 0 to all-excluding-self back to back, and spins until <c>cpus - 1</c> APs checked in
    /// (cpus from fw_cfg in <see cref="VarCpus"/>).
    /// </summary>
    public void StartAps()
    {
        var a = A;
        if (!_apEntry)
        {
            throw new InvalidOperationException("emit the AP entry (EmitApEntry) before StartAps");
        }

        // 00: 0F 20 C0           mov eax, cr0
        // 03: 66 83 C8 01        or eax, 1
        // 07: 0F 22 C0           mov cr0, eax
        // 0A: 66 0F 01 16 20 00  lgdt (32-bit operand) [0x0020]
        // 10: 66 EA off32 08 00  jmp far 0x08:ap32 (32-bit offset)
        a.mov(__dword_ptr[0x00], 0x66C0200F);
        a.mov(__dword_ptr[0x04], 0x0F01C883);
        a.mov(__dword_ptr[0x08], 0x0F66C022);
        a.mov(__dword_ptr[0x0C], 0x00201601);
        a.mov(__word_ptr[0x10], 0xEA66);
        a.mov(eax, __dword_ptr[VarApEntry]);
        a.mov(__dword_ptr[0x12], eax);
        a.mov(__word_ptr[0x16], MultibootKernelBuilder.Code32Selector);
        a.mov(__word_ptr[0x20], 31);
        a.mov(__dword_ptr[0x22], (uint)MultibootKernelBuilder.GdtAddress);

        SendIpi(0, 0x000C4500); // INIT, assert, all excluding self
        SendIpi(0, 0x000C4600); // SIPI vector 0 (start at 0000:0000)
        a.mov(eax, __dword_ptr[VarCpus]);
        a.dec(eax);
        var loop = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(ecx, 50_000_000);
        a.Label(ref loop);
        a.cmp(__dword_ptr[VarApsUp], eax);
        a.jae(done);
        a.pause();
        a.dec(ecx);
        a.jnz(loop);
        a.Label(ref done);
    }

    /// <summary>
    /// The AP side: flat segments, a stack of its own, the shared IDT, the local APIC enabled with
    /// its flat logical ID, check in (LOCK INC), then halt with interrupts enabled forever so
    /// IPIs and NMIs reach its handlers.
    /// </summary>
    public void EmitApEntry()
    {
        var a = A;
        _apEntry = true;
        var skip = a.CreateLabel();
        a.call(skip); // pushes the AP entry's address (stored in VarApEntry below)
        a.mov(ax, MultibootKernelBuilder.DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.mov(eax, __dword_ptr[ApicId]);
        a.shr(eax, 24);
        a.inc(eax);
        a.shl(eax, 12);
        a.add(eax, ApStackBase);
        a.mov(esp, eax);
        LoadIdt();
        EnableApic();
        a.@lock.inc(__dword_ptr[VarApsUp]);
        var idle = a.CreateLabel();
        a.Label(ref idle);
        a.sti();
        a.hlt();
        a.jmp(idle);
        a.Label(ref skip);
        a.pop(eax);
        a.mov(__dword_ptr[VarApEntry], eax);
    }
}
