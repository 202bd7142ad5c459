using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

public static partial class PlatformGuests
{
    private const uint ApicLvtLint0 = PcGuestKit.ApicBase + 0x350;
    private const int PicBase = 0x20, PitVector = PicBase, TestDevLine = 3, LineVector = PicBase + TestDevLine, SelfIpiVector = 0x50;

    /// <summary>
    /// The 8259 pair as the PC's interrupt controller behind LINT0 (virtual-wire mode, MP spec
    /// 3.6.2.2): the PIC is initialised with its vectors at 0x20/0x28, pc-testdev's line 3 and the
    /// PIT's IRQ 0 reach the CPU only while LINT0 is unmasked in ExtINT mode (SDM 11.5.1) or the
    /// APIC is hardware-disabled (SDM 11.4.3: INTR goes straight to the core), IMR masks a line
    /// whose request stays latched in IRR, and the handlers end with a non-specific EOI to the PIC.
    /// The handlers never touch the APIC page, which is gone once the APIC is disabled.
    /// <para>
    /// <paramref name="maskLint0WhenDisabled"/>: LINT0 is masked before the APIC is disabled, so
    /// only SDM 11.4.3's rule can deliver the last interrupt. QEMU 7.2's TCG drops it (its
    /// pic_irq_request still goes through the masked LINT0 of a disabled APIC), so the golden run
    /// leaves LINT0 in ExtINT mode and the masked variant is ActorVm's own test.
    /// </para>
    /// </summary>
    public static byte[] BuildPicExtInt(KernelFormat format = KernelFormat.AoutKludge) => BuildPicExtInt(format, maskLint0WhenDisabled: false);

    public static byte[] BuildPicExtIntLint0Masked(KernelFormat format = KernelFormat.AoutKludge) => BuildPicExtInt(format, maskLint0WhenDisabled: true);

    private static byte[] BuildPicExtInt(KernelFormat format, bool maskLint0WhenDisabled)
    {
        var kit = Start();
        var a = kit.A;
        var lineCount = PcGuestKit.Counter(0, LineVector);
        var pitCount = PcGuestKit.Counter(0, PitVector);

        PicHandler(kit, PitVector, lowerLine: -1);
        PicHandler(kit, LineVector, lowerLine: TestDevLine);
        kit.RawHandler(PicBase + 7, x => x.iretd()); // spurious IRQ 7: nothing in service, no EOI
        kit.Handler(SelfIpiVector); // a LAPIC vector: EOI to the LAPIC
        kit.BuildIdt();
        kit.EnableApic();

        // ICW1 (edge, cascade, ICW4 follows), ICW2 vector base, ICW3 cascade on IRQ 2, ICW4 8086 mode.
        InitPic(a, 0x20, PicBase, 0x04);
        InitPic(a, 0xA0, PicBase + 8, 0x02);
        SetImr(a, 0xFF);
        a.mov(__dword_ptr[ApicLvtLint0], 0x10700); // ExtINT, masked

        // INTR is up while LINT0 is masked. A self-IPI makes the CPU look at its interrupts while
        // it is: the IPI arrives, the PIC's request must not.
        SetImr(a, unchecked((byte)~(1 << TestDevLine)));
        kit.SetIrqLine(TestDevLine, true);
        a.sti();
        kit.SendIpi(0, (1 << 18) | SelfIpiVector); // self shorthand, fixed, edge
        kit.Delay(100_000);
        a.cli();
        kit.CheckEquals("lint0 masked: pic intr held off, self-ipi taken", lineCount, 0);
        kit.CheckEquals("self-ipi while pic intr is held off", PcGuestKit.Counter(0, SelfIpiVector), 1);

        a.mov(__dword_ptr[ApicLvtLint0], 0x700); // ExtINT, unmasked: the request already pending arrives
        kit.HaltUntil(lineCount, 1);
        kit.CheckEquals("lint0 extint: irq 3 at vector 0x23", lineCount, 1);

        SetImr(a, 0xFF);
        kit.SetIrqLine(TestDevLine, true);
        a.sti();
        kit.Delay(100_000);
        a.cli();
        kit.CheckEquals("imr masks irq 3", lineCount, 1);
        SetImr(a, unchecked((byte)~(1 << TestDevLine)));
        kit.HaltUntil(lineCount, 2);
        kit.CheckEquals("irq 3 latched while masked, delivered on unmask", lineCount, 2);

        // PIT channel 0, mode 2, 1193 ticks ≈ 1 ms: three IRQ 0s need three EOIs to the PIC.
        SetImr(a, 0xFE);
        a.mov(al, 0x34);
        a.@out(0x43, al);
        a.mov(al, 0xA9);
        a.@out(0x40, al);
        a.mov(al, 0x04);
        a.@out(0x40, al);
        kit.HaltUntil(pitCount, 3);
        SetImr(a, 0xFF);
        kit.Check("pit irq 0 through the pic", (x, bad) =>
        {
            x.cmp(__dword_ptr[pitCount], 3);
            x.jb(bad);
        });

        // IA32_APIC_BASE.EN cleared: the PIC drives INTR directly, whatever LINT0 says.
        a.mov(__dword_ptr[ApicLvtLint0], maskLint0WhenDisabled ? 0x10700 : 0x700);
        a.mov(ecx, 0x1B);
        a.rdmsr();
        a.and(eax, ~0x800);
        a.wrmsr();
        SetImr(a, unchecked((byte)~(1 << TestDevLine)));
        kit.SetIrqLine(TestDevLine, true);
        kit.HaltUntil(lineCount, 3);
        kit.CheckEquals(maskLint0WhenDisabled ? "apic disabled, lint0 masked: pic drives intr directly" : "apic disabled: pic drives intr directly", lineCount, 3);

        kit.Finish();
        return kit.Kernel.Build(format);
    }

    /// <summary>Counts <paramref name="vector"/> on CPU 0, lowers pc-testdev's line (when given), non-specific EOI to the master.</summary>
    private static void PicHandler(PcGuestKit kit, int vector, int lowerLine) =>
        kit.RawHandler(vector, x =>
        {
            x.push(eax);
            x.push(edx);
            x.@lock.inc(__dword_ptr[PcGuestKit.Counter(0, vector)]);
            if (lowerLine >= 0)
            {
                x.mov(dx, (ushort)(Devices.PcTestDev.IrqPortBase + lowerLine));
                x.mov(al, 0);
                x.@out(dx, al);
            }

            x.mov(al, 0x20);
            x.@out(0x20, al);
            x.pop(edx);
            x.pop(eax);
            x.iretd();
        });

    private static void InitPic(Assembler a, byte command, int vectorBase, byte icw3)
    {
        a.mov(al, 0x11);
        a.@out(command, al);
        a.mov(al, (byte)vectorBase);
        a.@out((byte)(command + 1), al);
        a.mov(al, icw3);
        a.@out((byte)(command + 1), al);
        a.mov(al, 0x01);
        a.@out((byte)(command + 1), al);
    }

    /// <summary>OCW1 to the master; the slave stays fully masked.</summary>
    private static void SetImr(Assembler a, byte masterMask)
    {
        a.mov(al, masterMask);
        a.@out(0x21, al);
        a.mov(al, 0xFF);
        a.@out(0xA1, al);
    }
}
