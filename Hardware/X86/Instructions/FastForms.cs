using System.Runtime.CompilerServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// Specialised handlers for the hottest operand forms, chosen per decoded instruction when a
/// block is decoded: register-register and register-immediate ALU operations and MOVs with a
/// [base + index*scale + disp] address, in 32- and 64-bit widths; shifts by an immediate
/// (FastForms.Shift.cs); branches, calls and the stack (FastForms.Flow.cs); LEA, MOVZX and
/// ALU operations with a memory source (FastForms.Addressing.cs). Each does exactly what the generic
/// handler of its group does for that form (same result, same lazy-flag record), only without
/// decoding the operand kinds again on every execution. Anything else keeps the generic handler.
/// </summary>
internal static unsafe partial class FastForms
{
    /// <summary>A specialised handler for this instruction, or 0 to use the generic one.</summary>
    public static nint Select(in Instruction ins)
    {
        if (ins.HasLockPrefix || ins.HasRepPrefix || ins.HasRepnePrefix)
        {
            return 0;
        }

        var rr = ins.OpCount == 2 && ins.Op0Kind == OpKind.Register && ins.Op1Kind == OpKind.Register;
        var ri = ins.OpCount == 2 && ins.Op0Kind == OpKind.Register && ins.Op1Kind is OpKind.Immediate32 or OpKind.Immediate8to32 or OpKind.Immediate32to64 or OpKind.Immediate8to64;
        var r = ins.OpCount == 1 && ins.Op0Kind == OpKind.Register;
        if (SelectFlow(ins) is var flow and not 0)
        {
            return flow;
        }

        if (SelectShift(ins) is var shift and not 0)
        {
            return shift;
        }

        if (SelectAddressing(ins) is var addressing and not 0)
        {
            return addressing;
        }

        return ins.Code switch
        {
            Code.Mov_r32_rm32 or Code.Mov_rm32_r32 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&MovRR32,
            Code.Mov_r64_rm64 or Code.Mov_rm64_r64 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&MovRR64,
            Code.Mov_r32_rm32 when SimpleMemory(ins) => (nint)(delegate*<Cpu, ref Instruction, void>)&Load32,
            Code.Mov_rm32_r32 when SimpleMemory(ins) => (nint)(delegate*<Cpu, ref Instruction, void>)&Store32,
            Code.Mov_r64_rm64 when SimpleMemory(ins) => (nint)(delegate*<Cpu, ref Instruction, void>)&Load64,
            Code.Mov_rm64_r64 when SimpleMemory(ins) => (nint)(delegate*<Cpu, ref Instruction, void>)&Store64,
            Code.Mov_r32_imm32 => (nint)(delegate*<Cpu, ref Instruction, void>)&MovRI32,
            Code.Add_r32_rm32 or Code.Add_rm32_r32 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&AddRR32,
            Code.Add_r64_rm64 or Code.Add_rm64_r64 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&AddRR64,
            Code.Add_rm32_imm32 or Code.Add_rm32_imm8 or Code.Add_EAX_imm32 when ri => (nint)(delegate*<Cpu, ref Instruction, void>)&AddRI32,
            Code.Add_rm64_imm32 or Code.Add_rm64_imm8 or Code.Add_RAX_imm32 when ri => (nint)(delegate*<Cpu, ref Instruction, void>)&AddRI64,
            Code.Sub_r32_rm32 or Code.Sub_rm32_r32 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&SubRR32,
            Code.Sub_r64_rm64 or Code.Sub_rm64_r64 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&SubRR64,
            Code.Sub_rm32_imm32 or Code.Sub_rm32_imm8 or Code.Sub_EAX_imm32 when ri => (nint)(delegate*<Cpu, ref Instruction, void>)&SubRI32,
            Code.Sub_rm64_imm32 or Code.Sub_rm64_imm8 or Code.Sub_RAX_imm32 when ri => (nint)(delegate*<Cpu, ref Instruction, void>)&SubRI64,
            Code.Cmp_r32_rm32 or Code.Cmp_rm32_r32 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&CmpRR32,
            Code.Cmp_r64_rm64 or Code.Cmp_rm64_r64 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&CmpRR64,
            Code.Cmp_rm32_imm32 or Code.Cmp_rm32_imm8 or Code.Cmp_EAX_imm32 when ri => (nint)(delegate*<Cpu, ref Instruction, void>)&CmpRI32,
            Code.Cmp_rm64_imm32 or Code.Cmp_rm64_imm8 or Code.Cmp_RAX_imm32 when ri => (nint)(delegate*<Cpu, ref Instruction, void>)&CmpRI64,
            Code.Xor_r32_rm32 or Code.Xor_rm32_r32 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&XorRR32,
            Code.Xor_r64_rm64 or Code.Xor_rm64_r64 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&XorRR64,
            Code.Xor_rm32_imm32 or Code.Xor_rm32_imm8 or Code.Xor_EAX_imm32 when ri => (nint)(delegate*<Cpu, ref Instruction, void>)&XorRI32,
            Code.And_r32_rm32 or Code.And_rm32_r32 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&AndRR32,
            Code.And_rm32_imm32 or Code.And_rm32_imm8 or Code.And_EAX_imm32 when ri => (nint)(delegate*<Cpu, ref Instruction, void>)&AndRI32,
            Code.Or_r32_rm32 or Code.Or_rm32_r32 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&OrRR32,
            Code.Test_rm32_r32 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&TestRR32,
            Code.Test_rm64_r64 when rr => (nint)(delegate*<Cpu, ref Instruction, void>)&TestRR64,
            Code.Inc_rm32 or Code.Inc_r32 when r => (nint)(delegate*<Cpu, ref Instruction, void>)&IncR32,
            Code.Dec_rm32 or Code.Dec_r32 when r => (nint)(delegate*<Cpu, ref Instruction, void>)&DecR32,
            Code.Inc_rm64 when r => (nint)(delegate*<Cpu, ref Instruction, void>)&IncR64,
            Code.Dec_rm64 when r => (nint)(delegate*<Cpu, ref Instruction, void>)&DecR64,
            _ => 0,
        };
    }

    /// <summary>A memory operand (either side) whose address <see cref="LeanLinear"/> computes.</summary>
    private static bool SimpleMemory(in Instruction ins) =>
        ins.OpCount == 2
        && (ins.Op0Kind == OpKind.Memory) != (ins.Op1Kind == OpKind.Memory)
        && LeanAddress(ins);

    // The immediate of a reg-imm form without Instruction.GetImmediate's switch (a call on every
    // execution): imm8 forms sign-extend the stored byte, the others store the full value.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Imm32(ref Instruction ins) => ins.Op1Kind == OpKind.Immediate8to32 ? (uint)ins.Immediate8to32 : ins.Immediate32;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Imm64(ref Instruction ins) => ins.Op1Kind == OpKind.Immediate8to64 ? (ulong)ins.Immediate8to64 : (ulong)ins.Immediate32to64;

    private static int R32(Register r) => r - Register.EAX;
    private static int R64(Register r) => r - Register.RAX;

    private static ulong SimpleLinear(Cpu cpu, ref Instruction ins) => LeanLinear(cpu, ref ins);

    private static void MovRR32(Cpu cpu, ref Instruction ins) => cpu.Gpr[R32(ins.Op0Register)] = (uint)cpu.Gpr[R32(ins.Op1Register)];
    private static void MovRR64(Cpu cpu, ref Instruction ins) => cpu.Gpr[R64(ins.Op0Register)] = cpu.Gpr[R64(ins.Op1Register)];
    private static void MovRI32(Cpu cpu, ref Instruction ins) => cpu.Gpr[R32(ins.Op0Register)] = ins.Immediate32;
    private static void Load32(Cpu cpu, ref Instruction ins) => cpu.Gpr[R32(ins.Op0Register)] = (uint)cpu.ReadLinear(SimpleLinear(cpu, ref ins), 4);
    private static void Store32(Cpu cpu, ref Instruction ins) => cpu.WriteLinear(SimpleLinear(cpu, ref ins), 4, (uint)cpu.Gpr[R32(ins.Op1Register)]);
    private static void Load64(Cpu cpu, ref Instruction ins) => cpu.Gpr[R64(ins.Op0Register)] = cpu.ReadLinear(SimpleLinear(cpu, ref ins), 8);
    private static void Store64(Cpu cpu, ref Instruction ins) => cpu.WriteLinear(SimpleLinear(cpu, ref ins), 8, cpu.Gpr[R64(ins.Op1Register)]);

    private static void AddRR32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var a = (uint)d;
        var b = (uint)cpu.Gpr[R32(ins.Op1Register)];
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 4, a, b, r);
    }

    private static void AddRR64(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R64(ins.Op0Register)];
        var a = d;
        var b = cpu.Gpr[R64(ins.Op1Register)];
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 8, a, b, r);
    }

    private static void AddRI32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var a = (uint)d;
        var b = Imm32(ref ins);
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 4, a, b, r);
    }

    private static void AddRI64(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R64(ins.Op0Register)];
        var a = d;
        var b = Imm64(ref ins);
        var r = a + b;
        d = r;
        cpu.SetLazy(FlagOp.Add, 8, a, b, r);
    }

    private static void SubRR32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var a = (uint)d;
        var b = (uint)cpu.Gpr[R32(ins.Op1Register)];
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 4, a, b, r);
    }

    private static void SubRR64(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R64(ins.Op0Register)];
        var a = d;
        var b = cpu.Gpr[R64(ins.Op1Register)];
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 8, a, b, r);
    }

    private static void SubRI32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var a = (uint)d;
        var b = Imm32(ref ins);
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 4, a, b, r);
    }

    private static void SubRI64(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R64(ins.Op0Register)];
        var a = d;
        var b = Imm64(ref ins);
        var r = a - b;
        d = r;
        cpu.SetLazy(FlagOp.Sub, 8, a, b, r);
    }

    private static void CmpRR32(Cpu cpu, ref Instruction ins)
    {
        var a = (uint)cpu.Gpr[R32(ins.Op0Register)];
        var b = (uint)cpu.Gpr[R32(ins.Op1Register)];
        cpu.SetLazy(FlagOp.Sub, 4, a, b, a - b);
    }

    private static void CmpRR64(Cpu cpu, ref Instruction ins)
    {
        var a = cpu.Gpr[R64(ins.Op0Register)];
        var b = cpu.Gpr[R64(ins.Op1Register)];
        cpu.SetLazy(FlagOp.Sub, 8, a, b, a - b);
    }

    private static void CmpRI32(Cpu cpu, ref Instruction ins)
    {
        var a = (uint)cpu.Gpr[R32(ins.Op0Register)];
        var b = Imm32(ref ins);
        cpu.SetLazy(FlagOp.Sub, 4, a, b, a - b);
    }

    private static void CmpRI64(Cpu cpu, ref Instruction ins)
    {
        var a = cpu.Gpr[R64(ins.Op0Register)];
        var b = Imm64(ref ins);
        cpu.SetLazy(FlagOp.Sub, 8, a, b, a - b);
    }

    private static void XorRR32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var r = (uint)d ^ (uint)cpu.Gpr[R32(ins.Op1Register)];
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    private static void XorRR64(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R64(ins.Op0Register)];
        var r = d ^ cpu.Gpr[R64(ins.Op1Register)];
        d = r;
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, r);
    }

    private static void XorRI32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var r = (uint)d ^ Imm32(ref ins);
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    private static void AndRR32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var r = (uint)d & (uint)cpu.Gpr[R32(ins.Op1Register)];
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    private static void AndRI32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var r = (uint)d & Imm32(ref ins);
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    private static void OrRR32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var r = (uint)d | (uint)cpu.Gpr[R32(ins.Op1Register)];
        d = r;
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, r);
    }

    private static void TestRR32(Cpu cpu, ref Instruction ins) =>
        cpu.SetLazy(FlagOp.Logic, 4, 0, 0, (uint)cpu.Gpr[R32(ins.Op0Register)] & (uint)cpu.Gpr[R32(ins.Op1Register)]);

    private static void TestRR64(Cpu cpu, ref Instruction ins) =>
        cpu.SetLazy(FlagOp.Logic, 8, 0, 0, cpu.Gpr[R64(ins.Op0Register)] & cpu.Gpr[R64(ins.Op1Register)]);

    private static void IncR32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var a = (uint)d;
        var r = a + 1;
        d = r;
        cpu.SetLazyKeepCarry(FlagOp.Inc, 4, a, r);
    }

    private static void DecR32(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R32(ins.Op0Register)];
        var a = (uint)d;
        var r = a - 1;
        d = r;
        cpu.SetLazyKeepCarry(FlagOp.Dec, 4, a, r);
    }

    private static void IncR64(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R64(ins.Op0Register)];
        var a = d;
        d = a + 1;
        cpu.SetLazyKeepCarry(FlagOp.Inc, 8, a, a + 1);
    }

    private static void DecR64(Cpu cpu, ref Instruction ins)
    {
        ref var d = ref cpu.Gpr[R64(ins.Op0Register)];
        var a = d;
        d = a - 1;
        cpu.SetLazyKeepCarry(FlagOp.Dec, 8, a, a - 1);
    }
}
