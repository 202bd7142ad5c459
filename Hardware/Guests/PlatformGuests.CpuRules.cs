using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests;

public static partial class PlatformGuests
{
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
}
