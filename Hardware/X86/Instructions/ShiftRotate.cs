using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

internal static unsafe class ShiftRotate
{
    public static void Register(InstructionTable.Builder b)
    {
    }
}
