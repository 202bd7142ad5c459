using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>System instructions (SDM vol. 2; VM-exit behaviour per SDM vol. 3 chapter 26).</summary>
internal static unsafe class SystemOps
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Hlt, Code.Hlt);
    }

    /// <summary>HLT: #GP at CPL&gt;0; otherwise exit 12, and the completed instruction halts the vCPU.</summary>
    private static void Hlt(Cpu cpu, ref Instruction ins)
    {
        if (cpu.Cpl != 0)
        {
            throw GuestFault.Gp();
        }

        if (cpu.TakeCompletion(out _))
        {
            cpu.Halted = true;
            return;
        }

        cpu.RequestExit(new VmExit(ExitReason.Hlt));
    }
}
