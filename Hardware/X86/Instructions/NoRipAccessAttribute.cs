namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// Marks a fast form that reads and writes neither RIP nor the instruction start and does not
/// ask for an exit: loads, stores, ALU operations with a memory source, PUSH/POP of a register.
/// It can fault or take an MMIO exit (the loop then rewinds RIP from the slot index, which a
/// composed block still stores) and a store can end the block by writing into code. So a composed
/// block (<see cref="BlockCompiler"/>) does not store RIP before such a slot; it stores the next
/// RIP only on the way out, when the slot ended the block or is the block's last.
/// </summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
internal sealed class NoRipAccessAttribute : Attribute;
