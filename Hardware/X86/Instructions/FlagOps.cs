using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>CLC, STC, CMC, CLD, STD, LAHF, SAHF (SDM vol. 2). CLI/STI live with the system instructions.</summary>
internal static unsafe class FlagOps
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Clc, Code.Clc);
        b.Add(&Stc, Code.Stc);
        b.Add(&Cmc, Code.Cmc);
        b.Add(&Cld, Code.Cld);
        b.Add(&Std, Code.Std);
        b.Add(&Lahf, Code.Lahf);
        b.Add(&Sahf, Code.Sahf);
    }

    private static void Clc(Cpu cpu, ref Instruction ins) => cpu.SetSomeFlags(Rflags.CF, 0);

    private static void Stc(Cpu cpu, ref Instruction ins) => cpu.SetSomeFlags(Rflags.CF, Rflags.CF);

    private static void Cmc(Cpu cpu, ref Instruction ins) => cpu.SetSomeFlags(Rflags.CF, cpu.CF ? 0 : Rflags.CF);

    private static void Cld(Cpu cpu, ref Instruction ins) => cpu.SetControlFlag(Rflags.DF, false);

    private static void Std(Cpu cpu, ref Instruction ins) => cpu.SetControlFlag(Rflags.DF, true);

    /// <summary>LAHF: AH = SF:ZF:0:AF:0:PF:1:CF (in 64-bit mode it needs CPUID.80000001H:ECX.LAHF-SAHF).</summary>
    private static void Lahf(Cpu cpu, ref Instruction ins)
    {
        var f = cpu.Flags & (Rflags.SF | Rflags.ZF | Rflags.AF | Rflags.PF | Rflags.CF);
        cpu.WriteReg(Iced.Intel.Register.AH, f | Rflags.Reserved1);
    }

    private static void Sahf(Cpu cpu, ref Instruction ins)
    {
        const ulong m = Rflags.SF | Rflags.ZF | Rflags.AF | Rflags.PF | Rflags.CF;
        cpu.SetSomeFlags(m, cpu.ReadReg(Iced.Intel.Register.AH));
    }
}
