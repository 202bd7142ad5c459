namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// Marks a fast form that only reads and writes general-purpose registers, the lazy flags and its
/// own record: it cannot fault, ask for an exit or end the block, and it reads neither RIP nor the
/// instruction start. A composed block (<see cref="BlockCompiler"/>) therefore skips, for such a
/// slot, what the interpreter loop does for every slot so that a fault, an exit or a handler can
/// see where it is: the slot index store, the RIP store (except in the block's last slot, whose
/// RIP the next block is looked up by) and the break test. A wrong mark shows as a wrong fault
/// RIP or retired count in the compiled-blocks tests.
/// </summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
internal sealed class RegisterOnlyAttribute : Attribute;
