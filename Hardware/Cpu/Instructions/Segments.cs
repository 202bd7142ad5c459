using Iced.Intel;

namespace ActorVm.Hardware.Cpu.Instructions;

internal static unsafe class Segments
{
    public static void Register(InstructionTable.Builder b)
    {
    }
}
