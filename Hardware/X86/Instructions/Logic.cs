using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>AND, OR, XOR, TEST, NOT (SDM vol. 2): OF=CF=0, SF/ZF/PF from the result (lazy), AF undefined (0).</summary>
internal static unsafe class Logic
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&And, Arithmetic.Forms(Mnemonic.And));
        b.Add(&Or, Arithmetic.Forms(Mnemonic.Or));
        b.Add(&Xor, Arithmetic.Forms(Mnemonic.Xor));
        b.Add(&Test, Arithmetic.Forms(Mnemonic.Test));
        b.Add(&Not, Arithmetic.Forms(Mnemonic.Not));
    }

    private static void And(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        ulong res;
        if (ins.HasLockPrefix)
        {
            res = cpu.AtomicUpdate(cpu.MemoryLinear(ref ins), size, src, &AndOp) & src;
        }
        else
        {
            res = cpu.ReadDest(ref ins, size, out var addr) & src;
            cpu.WriteDest(ref ins, size, addr, res);
        }

        cpu.SetLazy(FlagOp.Logic, size, 0, 0, res);
    }

    private static void Or(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        ulong res;
        if (ins.HasLockPrefix)
        {
            res = cpu.AtomicUpdate(cpu.MemoryLinear(ref ins), size, src, &OrOp) | src;
        }
        else
        {
            res = cpu.ReadDest(ref ins, size, out var addr) | src;
            cpu.WriteDest(ref ins, size, addr, res);
        }

        cpu.SetLazy(FlagOp.Logic, size, 0, 0, res);
    }

    private static void Xor(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadOp(ref ins, 1, size);
        ulong res;
        if (ins.HasLockPrefix)
        {
            res = cpu.AtomicUpdate(cpu.MemoryLinear(ref ins), size, src, &XorOp) ^ src;
        }
        else
        {
            res = cpu.ReadDest(ref ins, size, out var addr) ^ src;
            cpu.WriteDest(ref ins, size, addr, res);
        }

        cpu.SetLazy(FlagOp.Logic, size, 0, 0, res);
    }

    private static void Test(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var res = cpu.ReadOp(ref ins, 0, size) & cpu.ReadOp(ref ins, 1, size);
        cpu.SetLazy(FlagOp.Logic, size, 0, 0, res);
    }

    /// <summary>NOT: no flags affected.</summary>
    private static void Not(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        if (ins.HasLockPrefix)
        {
            cpu.AtomicUpdate(cpu.MemoryLinear(ref ins), size, 0, &NotOp);
            return;
        }

        var dst = cpu.ReadDest(ref ins, size, out var addr);
        cpu.WriteDest(ref ins, size, addr, ~dst & Cpu.SizeMask(size));
    }

    internal static ulong AndOp(ulong a, ulong b, int size) => a & b;

    internal static ulong OrOp(ulong a, ulong b, int size) => a | b;

    internal static ulong XorOp(ulong a, ulong b, int size) => a ^ b;

    internal static ulong NotOp(ulong a, ulong b, int size) => ~a;

    internal static ulong AndNotOp(ulong a, ulong b, int size) => a & ~b;
}
