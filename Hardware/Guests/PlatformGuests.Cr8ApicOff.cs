using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

public static partial class PlatformGuests
{
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
