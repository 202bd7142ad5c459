using Iced.Intel;

namespace ActorVm.Hardware.Cpu.Instructions;

internal static unsafe class ShiftRotate
{
    public static void Register(InstructionTable.Builder b)
    {
    }
}
