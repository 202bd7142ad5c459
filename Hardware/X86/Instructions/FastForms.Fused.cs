using System.Runtime.CompilerServices;
using unsafe Handler = delegate*<ActorVm.Hardware.X86.Cpu, ref ActorVm.Hardware.X86.DecodedInstruction, void>;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>A fast form that only sets a register and the flags, run as the first half of a fused pair.</summary>
internal interface IFlagSetter
{
    static abstract void Execute(Cpu cpu, ref DecodedInstruction op);
}

/// <summary>A condition code fixed at compile time (the tttn of the Jcc a pair ends with).</summary>
internal interface ICondition
{
    static abstract bool Holds(Cpu cpu);
}

/// <summary>
/// Superinstructions: a block that ends in "flag-setting ALU op; Jcc" (DEC/JNZ, CMP/JE,
/// TEST/JS …, the way loops and tests close) runs the pair as one handler, one dispatch instead
/// of two, with the condition fixed by the type (so the lazy-flag read is only the flags it
/// needs). The pair is fused when the block is decoded and only where the Jcc is the block's
/// last instruction; the first half is the same fast form as alone, so flags, faults (only the
/// first half can fault, before anything changed) and results are those of the two instructions
/// in sequence. Single steps (<see cref="Cpu.Complete"/>, interrupt shadows) run the halves
/// separately (<see cref="DecodedInstruction.Solo"/>).
/// </summary>
internal static unsafe partial class FastForms
{
    private static void Fused<TOp, TCc>(Cpu cpu, ref DecodedInstruction op)
        where TOp : struct, IFlagSetter
        where TCc : struct, ICondition
    {
        TOp.Execute(cpu, ref op);
        cpu.Rip = TCc.Holds(cpu) ? op.FusedTarget : op.FusedNext;
    }

    /// <summary>The fused handlers of one first half, indexed by condition code.</summary>
    private static nint[] Row<TOp>() where TOp : struct, IFlagSetter =>
    [
        H(&Fused<TOp, Cc0>), H(&Fused<TOp, Cc1>), H(&Fused<TOp, Cc2>), H(&Fused<TOp, Cc3>),
        H(&Fused<TOp, Cc4>), H(&Fused<TOp, Cc5>), H(&Fused<TOp, Cc6>), H(&Fused<TOp, Cc7>),
        H(&Fused<TOp, Cc8>), H(&Fused<TOp, Cc9>), H(&Fused<TOp, Cc10>), H(&Fused<TOp, Cc11>),
        H(&Fused<TOp, Cc12>), H(&Fused<TOp, Cc13>), H(&Fused<TOp, Cc14>), H(&Fused<TOp, Cc15>),
    ];

    /// <summary>First halves that can be fused, by their fast handler.</summary>
    private static readonly Dictionary<nint, nint[]> FusionRows = new()
    {
        [H(&DecR32)] = Row<DecR32Op>(), [H(&DecR64)] = Row<DecR64Op>(),
        [H(&IncR32)] = Row<IncR32Op>(), [H(&IncR64)] = Row<IncR64Op>(),
        [H(&CmpRR32)] = Row<CmpRR32Op>(), [H(&CmpRR64)] = Row<CmpRR64Op>(),
        [H(&CmpRI32)] = Row<CmpRI32Op>(), [H(&CmpRI64)] = Row<CmpRI64Op>(),
        [H(&TestRR32)] = Row<TestRR32Op>(), [H(&TestRR64)] = Row<TestRR64Op>(),
        [H(&TestRI32)] = Row<TestRI32Op>(), [H(&TestRI64)] = Row<TestRI64Op>(),
        [H(&SubRI32)] = Row<SubRI32Op>(), [H(&SubRI64)] = Row<SubRI64Op>(),
        [H(&AddRI32)] = Row<AddRI32Op>(), [H(&AddRI64)] = Row<AddRI64Op>(),
        [H(&CmpLoad32<Addr32>)] = Row<CmpLoad32Op<Addr32>>(), [H(&CmpLoad32<Addr64>)] = Row<CmpLoad32Op<Addr64>>(),
        [H(&CmpLoad64<Addr64>)] = Row<CmpLoad64Op<Addr64>>(),
    };

    /// <summary>
    /// Fuses the last two instructions of a block when the first is a fusible fast form and the
    /// second a fast Jcc: sets the first's <see cref="DecodedInstruction.Handler"/> and branch
    /// fields and returns true (the block then runs one slot fewer).
    /// </summary>
    public static bool TryFuse(ref DecodedInstruction first, in DecodedInstruction jcc)
    {
        if (!FusionRows.TryGetValue(first.Handler, out var row) || Array.IndexOf(JccByCondition, jcc.Handler) is not (>= 0 and var cc))
        {
            return false;
        }

        first.Handler = row[cc];
        first.FusedTarget = jcc.Imm;
        first.FusedNext = jcc.NextIp;
        return true;
    }

    private readonly struct DecR32Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => DecR32(cpu, ref op); }
    private readonly struct DecR64Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => DecR64(cpu, ref op); }
    private readonly struct IncR32Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => IncR32(cpu, ref op); }
    private readonly struct IncR64Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => IncR64(cpu, ref op); }
    private readonly struct CmpRR32Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => CmpRR32(cpu, ref op); }
    private readonly struct CmpRR64Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => CmpRR64(cpu, ref op); }
    private readonly struct CmpRI32Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => CmpRI32(cpu, ref op); }
    private readonly struct CmpRI64Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => CmpRI64(cpu, ref op); }
    private readonly struct TestRR32Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => TestRR32(cpu, ref op); }
    private readonly struct TestRR64Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => TestRR64(cpu, ref op); }
    private readonly struct TestRI32Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => TestRI32(cpu, ref op); }
    private readonly struct TestRI64Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => TestRI64(cpu, ref op); }
    private readonly struct SubRI32Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => SubRI32(cpu, ref op); }
    private readonly struct SubRI64Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => SubRI64(cpu, ref op); }
    private readonly struct AddRI32Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => AddRI32(cpu, ref op); }
    private readonly struct AddRI64Op : IFlagSetter { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => AddRI64(cpu, ref op); }
    private readonly struct CmpLoad32Op<TAddr> : IFlagSetter where TAddr : struct, IAddressing { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => CmpLoad32<TAddr>(cpu, ref op); }
    private readonly struct CmpLoad64Op<TAddr> : IFlagSetter where TAddr : struct, IAddressing { [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Execute(Cpu cpu, ref DecodedInstruction op) => CmpLoad64<TAddr>(cpu, ref op); }

    // The sixteen conditions (SDM vol. 2 appendix B.1.4.7), each a type so Cpu.Condition folds.
    private readonly struct Cc0 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(0); }
    private readonly struct Cc1 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(1); }
    private readonly struct Cc2 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(2); }
    private readonly struct Cc3 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(3); }
    private readonly struct Cc4 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(4); }
    private readonly struct Cc5 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(5); }
    private readonly struct Cc6 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(6); }
    private readonly struct Cc7 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(7); }
    private readonly struct Cc8 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(8); }
    private readonly struct Cc9 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(9); }
    private readonly struct Cc10 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(10); }
    private readonly struct Cc11 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(11); }
    private readonly struct Cc12 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(12); }
    private readonly struct Cc13 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(13); }
    private readonly struct Cc14 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(14); }
    private readonly struct Cc15 : ICondition { public static bool Holds(Cpu cpu) => cpu.Condition(15); }
}
