using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>ADD, ADC, SUB, SBB, CMP, INC, DEC, NEG (SDM vol. 2): flags recorded lazily.</summary>
internal static unsafe class Arithmetic
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Add, Forms(Mnemonic.Add));
        b.Add(&Adc, Forms(Mnemonic.Adc));
        b.Add(&Sub, Forms(Mnemonic.Sub));
        b.Add(&Sbb, Forms(Mnemonic.Sbb));
        b.Add(&Cmp, Forms(Mnemonic.Cmp));
    }

    /// <summary>Every legacy-encoded form of a two-operand ALU mnemonic (r/m,r; r,r/m; r/m,imm; AL/AX/EAX/RAX,imm).</summary>
    internal static Code[] Forms(Mnemonic m) =>
        [.. Enum.GetValues<Code>().Where(c => c.Mnemonic() == m && c.Encoding() == EncodingKind.Legacy)];

    private static void Add(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var mask = Cpu.SizeMask(size);
        if (ins.HasLockPrefix && ins.Op0Kind == OpKind.Memory)
        {
            var la = cpu.MemoryLinear(ref ins);
            var old = cpu.AtomicUpdate(la, size, src, &AddOp);
            cpu.SetLazy(FlagOp.Add, size, old, src, (old + src) & mask);
            return;
        }

        var dst = cpu.ReadDest(ref ins, size, out var addr);
        var res = (dst + src) & mask;
        cpu.WriteDest(ref ins, size, addr, res);
        cpu.SetLazy(FlagOp.Add, size, dst, src, res);
    }

    private static void Sub(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var mask = Cpu.SizeMask(size);
        if (ins.HasLockPrefix && ins.Op0Kind == OpKind.Memory)
        {
            var la = cpu.MemoryLinear(ref ins);
            var old = cpu.AtomicUpdate(la, size, src, &SubOp);
            cpu.SetLazy(FlagOp.Sub, size, old, src, (old - src) & mask);
            return;
        }

        var dst = cpu.ReadDest(ref ins, size, out var addr);
        var res = (dst - src) & mask;
        cpu.WriteDest(ref ins, size, addr, res);
        cpu.SetLazy(FlagOp.Sub, size, dst, src, res);
    }

    private static void Cmp(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var dst = cpu.ReadOp(ref ins, 0, size);
        var src = cpu.ReadOp(ref ins, 1, size);
        cpu.SetLazy(FlagOp.Sub, size, dst, src, (dst - src) & Cpu.SizeMask(size));
    }

    private static void Adc(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var mask = Cpu.SizeMask(size);
        var carry = cpu.CF;
        var c = carry ? 1UL : 0;
        if (ins.HasLockPrefix && ins.Op0Kind == OpKind.Memory)
        {
            var la = cpu.MemoryLinear(ref ins);
            var old = cpu.AtomicUpdate(la, size, src + c, &AddOp);
            cpu.SetLazyWithCarry(FlagOp.Adc, size, old, src, (old + src + c) & mask, carry);
            return;
        }

        var dst = cpu.ReadDest(ref ins, size, out var addr);
        var res = (dst + src + c) & mask;
        cpu.WriteDest(ref ins, size, addr, res);
        cpu.SetLazyWithCarry(FlagOp.Adc, size, dst, src, res, carry);
    }

    private static void Sbb(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        var mask = Cpu.SizeMask(size);
        var carry = cpu.CF;
        var c = carry ? 1UL : 0;
        if (ins.HasLockPrefix && ins.Op0Kind == OpKind.Memory)
        {
            var la = cpu.MemoryLinear(ref ins);
            var old = cpu.AtomicUpdate(la, size, src + c, &SubOp);
            cpu.SetLazyWithCarry(FlagOp.Sbb, size, old, src, (old - src - c) & mask, carry);
            return;
        }

        var dst = cpu.ReadDest(ref ins, size, out var addr);
        var res = (dst - src - c) & mask;
        cpu.WriteDest(ref ins, size, addr, res);
        cpu.SetLazyWithCarry(FlagOp.Sbb, size, dst, src, res, carry);
    }

    internal static ulong AddOp(ulong a, ulong b, int size) => a + b;

    internal static ulong SubOp(ulong a, ulong b, int size) => a - b;
}
