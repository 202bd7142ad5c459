using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>MOV and friends (SDM vol. 2).</summary>
internal static unsafe class DataMovement
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Mov,
            Code.Mov_rm8_r8, Code.Mov_rm16_r16, Code.Mov_rm32_r32, Code.Mov_rm64_r64,
            Code.Mov_r8_rm8, Code.Mov_r16_rm16, Code.Mov_r32_rm32, Code.Mov_r64_rm64,
            Code.Mov_r8_imm8, Code.Mov_r16_imm16, Code.Mov_r32_imm32, Code.Mov_r64_imm64,
            Code.Mov_rm8_imm8, Code.Mov_rm16_imm16, Code.Mov_rm32_imm32, Code.Mov_rm64_imm32,
            Code.Mov_AL_moffs8, Code.Mov_AX_moffs16, Code.Mov_EAX_moffs32, Code.Mov_RAX_moffs64,
            Code.Mov_moffs8_AL, Code.Mov_moffs16_AX, Code.Mov_moffs32_EAX, Code.Mov_moffs64_RAX);
    }

    private static void Mov(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        cpu.WriteOp(ref ins, 0, size, cpu.ReadOp(ref ins, 1, size));
    }
}
