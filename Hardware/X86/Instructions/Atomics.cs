using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// XADD, CMPXCHG, CMPXCHG8B, CMPXCHG16B (SDM vol. 2), and which instructions accept LOCK
/// (SDM vol. 2 "LOCK"): LOCK on anything else, or with a register destination, is #UD.
/// </summary>
internal static unsafe class Atomics
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Xadd, Arithmetic.Forms(Mnemonic.Xadd));
        b.Add(&Cmpxchg, Arithmetic.Forms(Mnemonic.Cmpxchg));
        b.Add(&Cmpxchg8b, Code.Cmpxchg8b_m64);
        b.Add(&Cmpxchg16b, Code.Cmpxchg16b_m128);
    }

    /// <summary>True if a LOCK prefix is legal on this decoded instruction.</summary>
    public static bool LockAllowed(in Instruction ins) =>
        ins.Op0Kind == OpKind.Memory && ins.Mnemonic is Mnemonic.Add or Mnemonic.Adc or Mnemonic.Sub or Mnemonic.Sbb
            or Mnemonic.And or Mnemonic.Or or Mnemonic.Xor or Mnemonic.Inc or Mnemonic.Dec or Mnemonic.Neg or Mnemonic.Not
            or Mnemonic.Bts or Mnemonic.Btr or Mnemonic.Btc or Mnemonic.Xadd or Mnemonic.Cmpxchg or Mnemonic.Cmpxchg8b
            or Mnemonic.Cmpxchg16b or Mnemonic.Xchg;

    private static void Xadd(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var src = cpu.ReadReg(ins.Op1Register);
        var mask = Cpu.SizeMask(size);
        ulong dst;
        if (ins.Op0Kind == OpKind.Memory && ins.HasLockPrefix)
        {
            dst = cpu.AtomicUpdate(cpu.MemoryLinear(ref ins), size, src, &Arithmetic.AddOp);
        }
        else
        {
            dst = cpu.ReadDest(ref ins, size, out var addr);
            cpu.WriteReg(ins.Op1Register, dst);
            cpu.WriteDest(ref ins, size, addr, (dst + src) & mask);
            cpu.SetLazy(FlagOp.Add, size, dst, src, (dst + src) & mask);
            return;
        }

        cpu.WriteReg(ins.Op1Register, dst);
        cpu.SetLazy(FlagOp.Add, size, dst, src, (dst + src) & mask);
    }

    /// <summary>
    /// CMPXCHG: compares the accumulator with the destination; flags as CMP accumulator, dest.
    /// On failure the destination is written back with its own value (the processor always
    /// writes) and the accumulator loaded; a 32-bit accumulator is zero-extended only then.
    /// </summary>
    private static void Cmpxchg(Cpu cpu, ref Instruction ins)
    {
        var size = Cpu.OpSize(ref ins);
        var mask = Cpu.SizeMask(size);
        var acc = cpu.ReadGpr(Cpu.RAX, size);
        var src = cpu.ReadReg(ins.Op1Register);
        ulong dst;
        if (ins.Op0Kind == OpKind.Memory)
        {
            // Always atomic: a compare-exchange is what the locked form needs and is harmless without LOCK.
            dst = cpu.CompareExchangeLinear(cpu.MemoryLinear(ref ins), size, acc, src);
        }
        else
        {
            dst = cpu.ReadReg(ins.Op0Register);
            if (dst == acc)
            {
                cpu.WriteReg(ins.Op0Register, src);
            }
        }

        cpu.SetLazy(FlagOp.Sub, size, acc, dst, (acc - dst) & mask);
        if (dst != acc)
        {
            cpu.WriteGpr(Cpu.RAX, size, dst);
        }
    }

    /// <summary>CMPXCHG8B m64: EDX:EAX vs m64; ZF only, other flags kept.</summary>
    private static void Cmpxchg8b(Cpu cpu, ref Instruction ins)
    {
        var la = cpu.MemoryLinear(ref ins);
        var expected = ((ulong)(uint)cpu.Gpr[Cpu.RDX] << 32) | (uint)cpu.Gpr[Cpu.RAX];
        var value = ((ulong)(uint)cpu.Gpr[Cpu.RCX] << 32) | (uint)cpu.Gpr[Cpu.RBX];
        var found = cpu.CompareExchangeLinear(la, 8, expected, value);
        if (found == expected)
        {
            cpu.SetSomeFlags(Rflags.ZF, Rflags.ZF);
        }
        else
        {
            cpu.SetSomeFlags(Rflags.ZF, 0);
            cpu.WriteGpr(Cpu.RAX, 4, (uint)found);
            cpu.WriteGpr(Cpu.RDX, 4, found >> 32);
        }
    }

    /// <summary>
    /// CMPXCHG16B m128: RDX:RAX vs m128; #GP(0) unless 16-byte aligned. The 128-bit compare is
    /// made atomic by the VM's split lock (every other locked access to the same bytes that
    /// crosses no cache line uses Interlocked, so this is atomic only against other CMPXCHG16B and split accesses).
    /// </summary>
    private static void Cmpxchg16b(Cpu cpu, ref Instruction ins)
    {
        var ea = cpu.EffectiveAddress(ref ins);
        if ((ea & 15) != 0)
        {
            throw GuestFault.Gp();
        }

        var la = cpu.MemoryLinear(ref ins);
        bool equal;
        ulong lo, hi;
        lock (cpu.Memory.SplitLock)
        {
            lo = cpu.ReadLinear(la, 8);
            hi = cpu.ReadLinear(la + 8, 8);
            equal = lo == cpu.Gpr[Cpu.RAX] && hi == cpu.Gpr[Cpu.RDX];
            if (equal)
            {
                cpu.WriteLinear(la, 8, cpu.Gpr[Cpu.RBX]);
                cpu.WriteLinear(la + 8, 8, cpu.Gpr[Cpu.RCX]);
            }
        }

        cpu.SetSomeFlags(Rflags.ZF, equal ? Rflags.ZF : 0);
        if (!equal)
        {
            cpu.Gpr[Cpu.RAX] = lo;
            cpu.Gpr[Cpu.RDX] = hi;
        }
    }
}
