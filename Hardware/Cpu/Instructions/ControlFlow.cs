using Iced.Intel;

namespace ActorVm.Hardware.Cpu.Instructions;

internal static unsafe class ControlFlow
{
    public static void Register(InstructionTable.Builder b)
    {
    }
}
