using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Guests.Smp;

/// <summary>
/// self-ipi: the BSP sends itself fixed IPIs (shorthand self, vector 0x60) and checks when they
/// arrive: not while IF = 0; right after STI's shadow (SDM 6.8.3); not while TPR = 0x70 masks
/// priority class 6 (SDM 11.8.3.1: deliverable only if the vector's class is above PPR's); as
/// soon as TPR drops to 0; and an NMI sent to itself while a fixed IPI waits in IRR with IF = 0,
/// which KVM injects first and then, with the IRQ still pending and nothing more injectable on
/// this entry, answers with -EBUSY: a forced immediate exit (kvm_check_and_inject_events; spec
/// §5 step 8). <c>iterations</c> times.
/// </summary>
public static class SelfIpi
{
    private const uint Count = SmpKernel.DataAddress, Nmis = Count + 4;
    private const byte Vector = 0x60;

    public static GuestProgram Program { get; } = new("self-ipi", "self-IPIs held back by IF=0 and by TPR masking, delivered after STI and after lowering TPR", _ => Build(new GuestBuildContext(1, GuestApicMode.X2Apic, 2_000_000_000, new Dictionary<string, string> { ["iterations"] = "100" })))
    {
        Parameters = [new GuestParameter("iterations", "rounds of the four checks", "100", 1, 1_000_000)],
        BuildFor = Build,
    };

    public static byte[] Build(GuestBuildContext c)
    {
        var iterations = c.Int("iterations");
        var k = new SmpKernel(c.Vcpus, c.Apic);
        var a = k.A;
        k.Handler(Vector, x => x.inc(__dword_ptr[(int)Count]));
        k.Handler(2, x => x.inc(__dword_ptr[(int)Nmis]), eoi: false);
        k.Boot(() => { });
        k.Code.Print($"self-ipi: {iterations} iterations of IF=0, STI, TPR=0x70, TPR=0, NMI over a pending IRQ\n");
        a.xor(edi, edi);
        a.xor(esi, esi); // deliveries expected so far
        a.mov(ebx, iterations);
        var loop = a.CreateLabel();
        a.Label(ref loop);

        a.cli();
        k.Apic.SendIpi(0, ApicOps.ShorthandSelf | ApicOps.Assert | Vector);
        a.nop();
        k.ExpectEqual(__dword_ptr[(int)Count], esi); // IF = 0: still pending
        a.sti();
        a.nop();
        a.nop();
        a.cli();
        a.inc(esi);
        k.ExpectEqual(__dword_ptr[(int)Count], esi); // delivered after the STI shadow

        k.Apic.WriteConst(ApicOps.Tpr, 0x70);
        a.sti();
        k.Apic.SendIpi(0, ApicOps.ShorthandSelf | ApicOps.Assert | Vector);
        a.nop();
        a.nop();
        k.ExpectEqual(__dword_ptr[(int)Count], esi); // class 6 ≤ TPR class 7: masked
        k.Apic.WriteConst(ApicOps.Tpr, 0);
        a.nop();
        a.nop();
        a.cli();
        a.inc(esi);
        k.ExpectEqual(__dword_ptr[(int)Count], esi); // TPR lowered: delivered

        // NMI while a fixed IPI is pending and IF = 0: the NMI is taken, the IPI waits for STI.
        k.Apic.SendIpi(0, ApicOps.ShorthandSelf | ApicOps.Assert | Vector);
        k.Apic.SendIpi(0, ApicOps.Assert | (4u << 8)); // NMI to APIC ID 0 (this CPU)
        a.nop();
        a.nop();
        k.ExpectEqual(__dword_ptr[(int)Count], esi); // IF = 0: the fixed IPI still waits
        a.mov(eax, iterations + 1);
        a.sub(eax, ebx);
        k.ExpectEqual(__dword_ptr[(int)Nmis], eax); // the NMI was taken regardless of IF
        a.sti();
        a.nop();
        a.nop();
        a.cli();
        a.inc(esi);
        k.ExpectEqual(__dword_ptr[(int)Count], esi);

        a.dec(ebx);
        a.jnz(loop);
        k.Verdict("self-ipi");
        return k.Build(c.Format);
    }
}
