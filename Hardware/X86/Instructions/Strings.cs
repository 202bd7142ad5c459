using System.Runtime.CompilerServices;
using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// MOVS, STOS, LODS, CMPS, SCAS, INS, OUTS with REP/REPE/REPNE (SDM vol. 2). rSI/rDI/rCX are
/// used at the address size and updated after every element, so an MMIO or IO exit in the
/// middle leaves the registers consistent; after <see cref="Chunk"/> elements a long REP
/// re-executes itself (RIP back at the instruction) so the run loop can poll kicks.
/// </summary>
internal static unsafe class Strings
{
    private const int Chunk = 4096;
    private const int Movs = 0, Stos = 1, Lods = 2, Cmps = 3, Scas = 4;

    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&MovsH, Code.Movsb_m8_m8, Code.Movsw_m16_m16, Code.Movsd_m32_m32, Code.Movsq_m64_m64);
        b.Add(&StosH, Code.Stosb_m8_AL, Code.Stosw_m16_AX, Code.Stosd_m32_EAX, Code.Stosq_m64_RAX);
        b.Add(&LodsH, Code.Lodsb_AL_m8, Code.Lodsw_AX_m16, Code.Lodsd_EAX_m32, Code.Lodsq_RAX_m64);
        b.Add(&CmpsH, Code.Cmpsb_m8_m8, Code.Cmpsw_m16_m16, Code.Cmpsd_m32_m32, Code.Cmpsq_m64_m64);
        b.Add(&ScasH, Code.Scasb_AL_m8, Code.Scasw_AX_m16, Code.Scasd_EAX_m32, Code.Scasq_RAX_m64);
        b.Add(&Ins, Code.Insb_m8_DX, Code.Insw_m16_DX, Code.Insd_m32_DX);
        b.Add(&Outs, Code.Outsb_DX_m8, Code.Outsw_DX_m16, Code.Outsd_DX_m32);
    }

    private static void MovsH(Cpu cpu, ref Instruction ins) => Run(cpu, ref ins, Movs);

    private static void StosH(Cpu cpu, ref Instruction ins) => Run(cpu, ref ins, Stos);

    private static void LodsH(Cpu cpu, ref Instruction ins) => Run(cpu, ref ins, Lods);

    private static void CmpsH(Cpu cpu, ref Instruction ins) => Run(cpu, ref ins, Cmps);

    private static void ScasH(Cpu cpu, ref Instruction ins) => Run(cpu, ref ins, Scas);

    /// <summary>Address size in bytes from the string operand kinds Iced reports.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int AddressSize(ref Instruction ins)
    {
        var k = ins.Op0Kind is OpKind.Register ? ins.Op1Kind : ins.Op0Kind;
        return k switch
        {
            OpKind.MemorySegSI or OpKind.MemoryESDI or OpKind.MemorySegDI => 2,
            OpKind.MemorySegESI or OpKind.MemoryESEDI or OpKind.MemorySegEDI => 4,
            _ => 8,
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ElementSize(Code c) => c switch
    {
        Code.Movsb_m8_m8 or Code.Stosb_m8_AL or Code.Lodsb_AL_m8 or Code.Cmpsb_m8_m8 or Code.Scasb_AL_m8 or Code.Insb_m8_DX or Code.Outsb_DX_m8 => 1,
        Code.Movsw_m16_m16 or Code.Stosw_m16_AX or Code.Lodsw_AX_m16 or Code.Cmpsw_m16_m16 or Code.Scasw_AX_m16 or Code.Insw_m16_DX or Code.Outsw_DX_m16 => 2,
        Code.Movsq_m64_m64 or Code.Stosq_m64_RAX or Code.Lodsq_RAX_m64 or Code.Cmpsq_m64_m64 or Code.Scasq_RAX_m64 => 8,
        _ => 4,
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Run(Cpu cpu, ref Instruction ins, int op)
    {
        var size = ElementSize(ins.Code);
        var asize = AddressSize(ref ins);
        var amask = Cpu.SizeMask(asize);
        var delta = cpu.DF ? (ulong)(-size) : (ulong)size;
        var srcSeg = (SegReg)(ins.MemorySegment - Iced.Intel.Register.ES);
        var repe = ins.HasRepePrefix;
        var repne = ins.HasRepnePrefix;
        var rep = repe || repne;
        var mask = Cpu.SizeMask(size);
        if (!rep)
        {
            Element(cpu, op, size, asize, amask, delta, srcSeg, mask);
            return;
        }

        var count = cpu.ReadGpr(Cpu.RCX, asize);
        for (var n = 0; n < Chunk; n++)
        {
            if (count == 0)
            {
                return;
            }

            Element(cpu, op, size, asize, amask, delta, srcSeg, mask);
            count = (count - 1) & amask;
            cpu.WriteGpr(Cpu.RCX, asize, count);
            cpu.CommitCompletions();
            if (op >= Cmps && (repe ? !cpu.ZF : cpu.ZF))
            {
                return;
            }
        }

        if (count != 0)
        {
            // Not finished: run this instruction again from the top of the next block.
            cpu.Rip = ins.IP;
            cpu.BreakBlock();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Element(Cpu cpu, int op, int size, int asize, ulong amask, ulong delta, SegReg srcSeg, ulong mask)
    {
        var si = cpu.ReadGpr(Cpu.RSI, asize);
        var di = cpu.ReadGpr(Cpu.RDI, asize);
        switch (op)
        {
            case Movs:
                cpu.WriteMem(SegReg.ES, di, size, cpu.ReadMem(srcSeg, si, size));
                cpu.WriteGpr(Cpu.RSI, asize, (si + delta) & amask);
                cpu.WriteGpr(Cpu.RDI, asize, (di + delta) & amask);
                break;
            case Stos:
                cpu.WriteMem(SegReg.ES, di, size, cpu.Gpr[Cpu.RAX]);
                cpu.WriteGpr(Cpu.RDI, asize, (di + delta) & amask);
                break;
            case Lods:
                cpu.WriteGpr(Cpu.RAX, size, cpu.ReadMem(srcSeg, si, size));
                cpu.WriteGpr(Cpu.RSI, asize, (si + delta) & amask);
                break;
            case Cmps:
            {
                var a = cpu.ReadMem(srcSeg, si, size);
                var b = cpu.ReadMem(SegReg.ES, di, size);
                cpu.SetLazy(FlagOp.Sub, size, a, b, (a - b) & mask);
                cpu.WriteGpr(Cpu.RSI, asize, (si + delta) & amask);
                cpu.WriteGpr(Cpu.RDI, asize, (di + delta) & amask);
                break;
            }

            default:
            {
                var a = cpu.Gpr[Cpu.RAX] & mask;
                var b = cpu.ReadMem(SegReg.ES, di, size);
                cpu.SetLazy(FlagOp.Sub, size, a, b, (a - b) & mask);
                cpu.WriteGpr(Cpu.RDI, asize, (di + delta) & amask);
                break;
            }
        }
    }

    /// <summary>
    /// INS: one IO exit per element (KVM's string PIO one element at a time). On the replay the
    /// completion value is stored at ES:rDI and the registers advance; the next element exits again.
    /// </summary>
    private static void Ins(Cpu cpu, ref Instruction ins)
    {
        var size = ElementSize(ins.Code);
        var asize = AddressSize(ref ins);
        var amask = Cpu.SizeMask(asize);
        var port = (ushort)cpu.Gpr[Cpu.RDX];
        var rep = ins.HasRepPrefix || ins.HasRepnePrefix;
        cpu.CheckIoPermission(port, size);
        while (true)
        {
            if (rep && cpu.ReadGpr(Cpu.RCX, asize) == 0)
            {
                return;
            }

            if (!cpu.TakeCompletion(out var value))
            {
                cpu.RequestExit(new VmExit(ExitReason.IoInstruction, VmExit.IoQualification(port, size, isIn: true, true, rep), Size: size));
                return;
            }

            var di = cpu.ReadGpr(Cpu.RDI, asize);
            cpu.WriteMem(SegReg.ES, di, size, value);
            cpu.WriteGpr(Cpu.RDI, asize, (di + (cpu.DF ? (ulong)(-size) : (ulong)size)) & amask);
            if (!rep)
            {
                return;
            }

            // Count the element; the next one needs its own exit (Complete returns it).
            cpu.WriteGpr(Cpu.RCX, asize, (cpu.ReadGpr(Cpu.RCX, asize) - 1) & amask);
            cpu.CommitCompletions();
        }
    }

    /// <summary>OUTS: the element is read first and handed out as the exit's value; on completion the registers advance.</summary>
    private static void Outs(Cpu cpu, ref Instruction ins)
    {
        var size = ElementSize(ins.Code);
        var asize = AddressSize(ref ins);
        var amask = Cpu.SizeMask(asize);
        var port = (ushort)cpu.Gpr[Cpu.RDX];
        var rep = ins.HasRepPrefix || ins.HasRepnePrefix;
        cpu.CheckIoPermission(port, size);
        while (true)
        {
            if (rep && cpu.ReadGpr(Cpu.RCX, asize) == 0)
            {
                return;
            }

            var si = cpu.ReadGpr(Cpu.RSI, asize);
            if (!cpu.TakeCompletion(out _))
            {
                var value = cpu.ReadMem((SegReg)(ins.MemorySegment - Iced.Intel.Register.ES), si, size);
                cpu.RequestExit(new VmExit(ExitReason.IoInstruction, VmExit.IoQualification(port, size, isIn: false, true, rep), Value: value, Size: size, IsWrite: true));
                return;
            }

            cpu.WriteGpr(Cpu.RSI, asize, (si + (cpu.DF ? (ulong)(-size) : (ulong)size)) & amask);
            if (!rep)
            {
                return;
            }

            cpu.WriteGpr(Cpu.RCX, asize, (cpu.ReadGpr(Cpu.RCX, asize) - 1) & amask);
            cpu.CommitCompletions();
        }
    }
}
