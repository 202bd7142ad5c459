using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

internal static unsafe class Strings
{
    public static void Register(InstructionTable.Builder b)
    {
    }
}
