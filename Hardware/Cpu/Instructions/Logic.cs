using Iced.Intel;

namespace ActorVm.Hardware.Cpu.Instructions;

internal static unsafe class Logic
{
    public static void Register(InstructionTable.Builder b)
    {
    }
}
