using ActorVm.Actors.Vm;
using ActorVm.Hardware;
using ActorVm.Hardware.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Actors.Tests.Guests;

/// <summary>
/// CR8 is the guest's view of TPR[7:4] (SDM 10.8.6.1): MOV CR8 retires without an exit, so the
/// run loop must carry it to the LAPIC (sync_cr8_to_lapic) and bring the LAPIC's TPR back into
/// CR8 (sync_lapic_to_cr8). A 64-bit Multiboot guest checks both directions and the masking.
/// (x2APIC, so not comparable with QEMU 7.2's TCG; the expected values are the SDM's.)
/// </summary>
public sealed class Cr8GuestSpec
{
    private const uint VarIrqs = 0x114200;

    [Theory(DisplayName = "MOV CR8 reaches the LAPIC's TPR and masks a self-IPI; a TPR write shows in CR8; lowering CR8 lets the IRQ in")]
    [MemberData(nameof(SmpGuestSpec.Methods), MemberType = typeof(SmpGuestSpec))]
    public void Cr8AndTprStayInSync(ImmediateExitMethod method)
    {
        var (serial, result, _) = SmpGuestSpec.Boot(Build(), new VmOptions { ImmediateExit = method }, vcpus: 1);

        Assert.Equal(
            "tpr after mov cr8, 0xb: 000000b0\n" +
            "cr8 after tpr = 0x70: 00000007\n" +
            "irqs with cr8 = 0xf: 00000000\n" +
            "irqs after cr8 = 0: 00000001\n", serial);
        Assert.Equal(RunOutcome.DebugExit, result.Outcome);
    }

    private static byte[] Build()
    {
        var k = new MultibootKernelBuilder();
        var c = k.EnterLongMode();
        k.InstallExceptionHandlers();
        var a = c.A;
        var handler = a.CreateLabel("irq40");

        // IDT gate 0x40 (SDM figure 6-8: 64-bit interrupt gate, selector 0x18).
        a.lea(rax, __[handler]);
        a.mov(rdi, MultibootKernelBuilder.IdtAddress + (0x40 * 16));
        a.mov(__word_ptr[rdi], ax);
        a.mov(__word_ptr[rdi + 2], MultibootKernelBuilder.Code64Selector);
        a.mov(__word_ptr[rdi + 4], 0x8E00);
        a.shr(rax, 16);
        a.mov(__word_ptr[rdi + 6], ax);
        a.shr(rax, 16);
        a.mov(__dword_ptr[rdi + 8], eax);
        a.mov(__dword_ptr[rdi + 12], 0);

        a.mov(ecx, 0x1B);
        a.rdmsr();
        a.or(eax, 0xC00); // x2APIC
        a.wrmsr();
        Wrmsr(a, 0x80F, 0x1FF);

        // CR8 → TPR: read back through the x2APIC TPR MSR (an exit, after which the LAPIC has it).
        a.mov(eax, 0xB);
        a.mov(cr8, rax);
        a.mov(ecx, 0x808);
        a.rdmsr();
        a.mov(r12d, eax);
        c.Print("tpr after mov cr8, 0xb: ");
        c.PrintHex(r12d);
        c.Print("\n");

        // TPR → CR8.
        Wrmsr(a, 0x808, 0x70);
        a.mov(rax, cr8);
        a.mov(r12d, eax);
        c.Print("cr8 after tpr = 0x70: ");
        c.PrintHex(r12d);
        c.Print("\n");

        // CR8 = 0xF masks every class: a self-IPI 0x40 stays in IRR with IF=1.
        a.mov(eax, 0xF);
        a.mov(cr8, rax);
        Wrmsr(a, 0x83F, 0x40);
        a.sti();
        var spin = a.CreateLabel();
        a.mov(ecx, 50_000);
        a.Label(ref spin);
        a.pause();
        a.dec(ecx);
        a.jnz(spin);
        a.mov(r12d, __dword_ptr[VarIrqs]);
        c.Print("irqs with cr8 = 0xf: ");
        c.PrintHex(r12d);
        c.Print("\n");

        // CR8 = 0: the LAPIC learns it at the next exit and the IRQ is delivered.
        a.xor(eax, eax);
        a.mov(cr8, rax);
        var wait = a.CreateLabel();
        var done = a.CreateLabel();
        a.Label(ref wait);
        a.cmp(__dword_ptr[VarIrqs], 0);
        a.jne(done);
        a.pause();
        a.jmp(wait);
        a.Label(ref done);
        a.mov(r12d, __dword_ptr[VarIrqs]);
        c.Print("irqs after cr8 = 0: ");
        c.PrintHex(r12d);
        c.Print("\n");
        c.DebugExit(0);

        a.Label(ref handler);
        a.push(rax);
        a.push(rcx);
        a.push(rdx);
        a.inc(__dword_ptr[VarIrqs]);
        Wrmsr(a, 0x80B, 0);
        a.pop(rdx);
        a.pop(rcx);
        a.pop(rax);
        a.iretq();
        return k.Build(KernelFormat.Elf32);
    }

    private static void Wrmsr(Assembler a, uint msr, uint value)
    {
        a.mov(ecx, msr);
        a.mov(eax, value);
        a.xor(edx, edx);
        a.wrmsr();
    }
}
