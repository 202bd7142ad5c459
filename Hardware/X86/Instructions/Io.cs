using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// IN/OUT: always a VM-exit (IO_INSTRUCTION, 30) with the SDM table 28-5 qualification; the
/// exit handler performs the port access and completes the instruction, which then retires.
/// INS/OUTS live with the string instructions.
/// </summary>
internal static unsafe class Io
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&In, Code.In_AL_imm8, Code.In_AX_imm8, Code.In_EAX_imm8, Code.In_AL_DX, Code.In_AX_DX, Code.In_EAX_DX);
        b.Add(&Out, Code.Out_imm8_AL, Code.Out_imm8_AX, Code.Out_imm8_EAX, Code.Out_DX_AL, Code.Out_DX_AX, Code.Out_DX_EAX);
    }

    private static void In(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.RegisterWidth(ins.Op0Register);
        var port = ins.Op1Kind == OpKind.Register ? (ushort)cpu.Gpr[Cpu.RDX] : (ushort)ins.Immediate8;
        cpu.CheckIoPermission(port, size);
        if (cpu.TakeCompletion(out var value))
        {
            cpu.WriteReg(ins.Op0Register, value);
            return;
        }

        cpu.RequestExit(new VmExit(ExitReason.IoInstruction, VmExit.IoQualification(port, size, isIn: true, false, false), Size: size));
    }

    private static void Out(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.RegisterWidth(ins.Op1Register);
        var port = ins.Op0Kind == OpKind.Register ? (ushort)cpu.Gpr[Cpu.RDX] : (ushort)ins.Immediate8;
        cpu.CheckIoPermission(port, size);
        if (cpu.TakeCompletion(out _))
        {
            return;
        }

        var value = cpu.ReadReg(ins.Op1Register);
        cpu.RequestExit(new VmExit(ExitReason.IoInstruction, VmExit.IoQualification(port, size, isIn: false, false, false), Value: value, Size: size, IsWrite: true));
    }
}
