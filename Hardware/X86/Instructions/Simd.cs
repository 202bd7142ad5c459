using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>
/// The x87 control and SSE data-movement instructions kernels use for state handling and
/// copies (SDM vol. 1 chapters 8-11; vol. 3 2.5 and 13.1 for CR0.EM/TS/MP and CR4.OSFXSR).
/// x87 arithmetic and the remaining SSE instructions stay unregistered: #UD, counted.
/// </summary>
internal static unsafe class Simd
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Fninit, Code.Fninit, Code.Finit);
        b.Add(&Fldcw, Code.Fldcw_m2byte);
        b.Add(&Fnstcw, Code.Fnstcw_m2byte, Code.Fstcw_m2byte);
        b.Add(&Fnstsw, Code.Fnstsw_m2byte, Code.Fstsw_m2byte, Code.Fnstsw_AX, Code.Fstsw_AX);
        b.Add(&Fnclex, Code.Fnclex, Code.Fclex);
        b.Add(&Fwait, Code.Wait);
        b.Add(&Emms, Code.Emms);
        b.Add(&Fxsave, Code.Fxsave_m512byte, Code.Fxsave64_m512byte);
        b.Add(&Fxrstor, Code.Fxrstor_m512byte, Code.Fxrstor64_m512byte);
        b.Add(&Ldmxcsr, Code.Ldmxcsr_m32);
        b.Add(&Stmxcsr, Code.Stmxcsr_m32);
        b.Add(&MovAligned, Code.Movaps_xmm_xmmm128, Code.Movaps_xmmm128_xmm, Code.Movapd_xmm_xmmm128, Code.Movapd_xmmm128_xmm,
            Code.Movdqa_xmm_xmmm128, Code.Movdqa_xmmm128_xmm);
        b.Add(&MovUnaligned, Code.Movups_xmm_xmmm128, Code.Movups_xmmm128_xmm, Code.Movupd_xmm_xmmm128, Code.Movupd_xmmm128_xmm,
            Code.Movdqu_xmm_xmmm128, Code.Movdqu_xmmm128_xmm);
        b.Add(&MovdToXmm, Code.Movd_xmm_rm32, Code.Movq_xmm_rm64, Code.Movq_xmm_xmmm64);
        b.Add(&MovdFromXmm, Code.Movd_rm32_xmm, Code.Movq_rm64_xmm, Code.Movq_xmmm64_xmm);
        b.Add(&MovdToMm, Code.Movd_mm_rm32, Code.Movq_mm_rm64, Code.Movq_mm_mmm64);
        b.Add(&MovdFromMm, Code.Movd_rm32_mm, Code.Movq_rm64_mm, Code.Movq_mmm64_mm);
        b.Add(&Xor128, Code.Pxor_xmm_xmmm128, Code.Xorps_xmm_xmmm128, Code.Xorpd_xmm_xmmm128);
        b.Add(&Movbe, Code.Movbe_r16_m16, Code.Movbe_r32_m32, Code.Movbe_r64_m64, Code.Movbe_m16_r16, Code.Movbe_m32_r32, Code.Movbe_m64_r64);
    }

    /// <summary>MXCSR bits FXRSTOR/LDMXCSR accept (DAZ included); others are #GP.</summary>
    public const uint MxcsrMask = 0xFFFF;

    // ---- availability rules ----

    /// <summary>x87 instructions: #NM when CR0.EM or CR0.TS is set (SDM 2.5 table 2-2).</summary>
    private static void CheckX87(Cpu cpu)
    {
        if ((cpu.Cr0 & (Cr0Bits.EM | Cr0Bits.TS)) != 0)
        {
            throw new GuestFault(Vector.NM);
        }
    }

    /// <summary>MMX: #UD with CR0.EM, #NM with CR0.TS.</summary>
    private static void CheckMmx(Cpu cpu)
    {
        if ((cpu.Cr0 & Cr0Bits.EM) != 0)
        {
            throw GuestFault.Ud();
        }

        if ((cpu.Cr0 & Cr0Bits.TS) != 0)
        {
            throw new GuestFault(Vector.NM);
        }
    }

    /// <summary>SSE: #UD with CR0.EM or without CR4.OSFXSR, then #NM with CR0.TS.</summary>
    private static void CheckSse(Cpu cpu)
    {
        if ((cpu.Cr0 & Cr0Bits.EM) != 0 || (cpu.Cr4 & Cr4Bits.OSFXSR) == 0)
        {
            throw GuestFault.Ud();
        }

        if ((cpu.Cr0 & Cr0Bits.TS) != 0)
        {
            throw new GuestFault(Vector.NM);
        }
    }

    private static void CheckAligned(ulong la, int alignment)
    {
        if ((la & (ulong)(alignment - 1)) != 0)
        {
            throw GuestFault.Gp();
        }
    }

    // ---- x87 control ----

    private static void Fninit(Cpu cpu, ref Instruction ins)
    {
        CheckX87(cpu);
        cpu.Fpu.Reset();
    }

    private static void Fldcw(Cpu cpu, ref Instruction ins)
    {
        CheckX87(cpu);
        cpu.Fpu.Control = (ushort)((cpu.ReadOp(ref ins, 0, 2) & 0x1F3F) | 0x40);
    }

    private static void Fnstcw(Cpu cpu, ref Instruction ins)
    {
        CheckX87(cpu);
        cpu.WriteLinear(cpu.MemoryLinear(ref ins), 2, cpu.Fpu.Control);
    }

    private static void Fnstsw(Cpu cpu, ref Instruction ins)
    {
        CheckX87(cpu);
        if (ins.Op0Kind == OpKind.Register)
        {
            cpu.WriteReg(Iced.Intel.Register.AX, cpu.Fpu.Status);
        }
        else
        {
            cpu.WriteLinear(cpu.MemoryLinear(ref ins), 2, cpu.Fpu.Status);
        }
    }

    /// <summary>FNCLEX: clears the exception flags, ES and B (SDM vol. 2 FCLEX).</summary>
    private static void Fnclex(Cpu cpu, ref Instruction ins)
    {
        CheckX87(cpu);
        cpu.Fpu.Status &= 0x7F00;
    }

    /// <summary>FWAIT: #NM only when both CR0.MP and CR0.TS are set; no unmasked x87 exception can be pending.</summary>
    private static void Fwait(Cpu cpu, ref Instruction ins)
    {
        if ((cpu.Cr0 & (Cr0Bits.MP | Cr0Bits.TS)) == (Cr0Bits.MP | Cr0Bits.TS))
        {
            throw new GuestFault(Vector.NM);
        }
    }

    /// <summary>EMMS: the x87 tag word becomes all-empty.</summary>
    private static void Emms(Cpu cpu, ref Instruction ins)
    {
        CheckMmx(cpu);
        cpu.Fpu.Tag = 0xFFFF;
    }

    // ---- FXSAVE / FXRSTOR (SDM vol. 2 FXSAVE, table 3-53) ----

    private static ulong FxArea(Cpu cpu, ref Instruction ins)
    {
        if ((cpu.Cr0 & (Cr0Bits.EM | Cr0Bits.TS)) != 0)
        {
            throw new GuestFault(Vector.NM);
        }

        var la = cpu.MemoryLinear(ref ins);
        CheckAligned(la, 16);
        return la;
    }

    private static int XmmCount(Cpu cpu) => cpu.Is64BitMode ? 16 : 8;

    private static void Fxsave(Cpu cpu, ref Instruction ins)
    {
        var la = FxArea(cpu, ref ins);
        cpu.Translate(la, AccessKind.Write);
        cpu.Translate(la + 511, AccessKind.Write);
        var f = cpu.Fpu;
        byte abridged = 0;
        for (var i = 0; i < 8; i++)
        {
            if (((f.Tag >> (2 * i)) & 3) != 3)
            {
                abridged |= (byte)(1 << i);
            }
        }

        cpu.WriteLinear(la, 2, f.Control);
        cpu.WriteLinear(la + 2, 2, f.Status);
        cpu.WriteLinear(la + 4, 2, abridged);
        cpu.WriteLinear(la + 6, 2, 0);   // FOP
        cpu.WriteLinear(la + 8, 8, 0);   // FIP (+FCS)
        cpu.WriteLinear(la + 16, 8, 0);  // FDP (+FDS)
        cpu.WriteLinear(la + 24, 4, cpu.Mxcsr);
        cpu.WriteLinear(la + 28, 4, MxcsrMask);
        for (var i = 0; i < 8; i++)
        {
            var r = f.Registers[i];
            cpu.WriteLinear(la + 32 + (ulong)(16 * i), 8, (ulong)r);
            cpu.WriteLinear(la + 40 + (ulong)(16 * i), 8, (ulong)(r >> 64) & 0xFFFF);
        }

        for (var i = 0; i < XmmCount(cpu); i++)
        {
            var x = cpu.Xmm[i];
            cpu.WriteLinear(la + 160 + (ulong)(16 * i), 8, (ulong)x);
            cpu.WriteLinear(la + 168 + (ulong)(16 * i), 8, (ulong)(x >> 64));
        }
    }

    private static void Fxrstor(Cpu cpu, ref Instruction ins)
    {
        var la = FxArea(cpu, ref ins);
        var mxcsr = (uint)cpu.ReadLinear(la + 24, 4);
        if ((mxcsr & ~MxcsrMask) != 0)
        {
            throw GuestFault.Gp();
        }

        // Read everything before changing anything: a #PF half-way must leave the state intact.
        var control = (ushort)cpu.ReadLinear(la, 2);
        var status = (ushort)cpu.ReadLinear(la + 2, 2);
        var abridged = (byte)cpu.ReadLinear(la + 4, 1);
        var st = new UInt128[8];
        for (var i = 0; i < 8; i++)
        {
            st[i] = new UInt128(cpu.ReadLinear(la + 40 + (ulong)(16 * i), 8) & 0xFFFF, cpu.ReadLinear(la + 32 + (ulong)(16 * i), 8));
        }

        var n = XmmCount(cpu);
        var xmm = new UInt128[n];
        for (var i = 0; i < n; i++)
        {
            xmm[i] = new UInt128(cpu.ReadLinear(la + 168 + (ulong)(16 * i), 8), cpu.ReadLinear(la + 160 + (ulong)(16 * i), 8));
        }

        var f = cpu.Fpu;
        f.Control = control;
        f.Status = status;
        ushort tag = 0;
        for (var i = 0; i < 8; i++)
        {
            // Abridged "valid" becomes tag 00 (valid); the precise zero/special class is not modelled.
            tag |= (ushort)(((abridged >> i) & 1) != 0 ? 0 : 3 << (2 * i));
        }

        f.Tag = tag;
        st.CopyTo(f.Registers, 0);
        cpu.Mxcsr = mxcsr;
        xmm.CopyTo(cpu.Xmm, 0);
    }

    private static void Ldmxcsr(Cpu cpu, ref Instruction ins)
    {
        CheckSse(cpu);
        var value = (uint)cpu.ReadLinear(cpu.MemoryLinear(ref ins), 4);
        if ((value & ~MxcsrMask) != 0)
        {
            throw GuestFault.Gp();
        }

        cpu.Mxcsr = value;
    }

    private static void Stmxcsr(Cpu cpu, ref Instruction ins)
    {
        CheckSse(cpu);
        cpu.WriteLinear(cpu.MemoryLinear(ref ins), 4, cpu.Mxcsr);
    }

    // ---- 128-bit moves ----

    private static int XmmIndex(Iced.Intel.Register r) => r - Iced.Intel.Register.XMM0;

    private static UInt128 Read128(Cpu cpu, ulong la) => new(cpu.ReadLinear(la + 8, 8), cpu.ReadLinear(la, 8));

    private static void Write128(Cpu cpu, ulong la, UInt128 value)
    {
        cpu.Translate(la, AccessKind.Write);
        cpu.Translate(la + 15, AccessKind.Write);
        cpu.WriteLinear(la, 8, (ulong)value);
        cpu.WriteLinear(la + 8, 8, (ulong)(value >> 64));
    }

    private static void Move128(Cpu cpu, ref Instruction ins, bool aligned)
    {
        CheckSse(cpu);
        if (ins.Op0Kind == OpKind.Register)
        {
            UInt128 value;
            if (ins.Op1Kind == OpKind.Register)
            {
                value = cpu.Xmm[XmmIndex(ins.Op1Register)];
            }
            else
            {
                var la = cpu.MemoryLinear(ref ins);
                if (aligned) CheckAligned(la, 16);
                value = Read128(cpu, la);
            }

            cpu.Xmm[XmmIndex(ins.Op0Register)] = value;
        }
        else
        {
            var la = cpu.MemoryLinear(ref ins);
            if (aligned) CheckAligned(la, 16);
            Write128(cpu, la, cpu.Xmm[XmmIndex(ins.Op1Register)]);
        }
    }

    private static void MovAligned(Cpu cpu, ref Instruction ins) => Move128(cpu, ref ins, aligned: true);

    private static void MovUnaligned(Cpu cpu, ref Instruction ins) => Move128(cpu, ref ins, aligned: false);

    /// <summary>MOVD/MOVQ xmm, r/m32/64 and MOVQ xmm, xmm/m64: zero-extends into the 128-bit register.</summary>
    private static void MovdToXmm(Cpu cpu, ref Instruction ins)
    {
        CheckSse(cpu);
        var size = ins.Code == Code.Movd_xmm_rm32 ? 4 : 8;
        ulong value;
        if (ins.Op1Kind == OpKind.Register && ins.Op1Register >= Iced.Intel.Register.XMM0 && ins.Op1Register <= Iced.Intel.Register.XMM31)
        {
            value = (ulong)cpu.Xmm[XmmIndex(ins.Op1Register)];
        }
        else
        {
            value = cpu.ReadOp(ref ins, 1, size);
        }

        cpu.Xmm[XmmIndex(ins.Op0Register)] = value & Cpu.SizeMask(size);
    }

    /// <summary>MOVD/MOVQ r/m, xmm and MOVQ xmm/m64, xmm (a register destination is zero-extended).</summary>
    private static void MovdFromXmm(Cpu cpu, ref Instruction ins)
    {
        CheckSse(cpu);
        var size = ins.Code == Code.Movd_rm32_xmm ? 4 : 8;
        var value = (ulong)cpu.Xmm[XmmIndex(ins.Op1Register)] & Cpu.SizeMask(size);
        if (ins.Op0Kind == OpKind.Register && ins.Op0Register >= Iced.Intel.Register.XMM0 && ins.Op0Register <= Iced.Intel.Register.XMM31)
        {
            cpu.Xmm[XmmIndex(ins.Op0Register)] = value;
        }
        else
        {
            cpu.WriteOp(ref ins, 0, size, value);
        }
    }

    // ---- MMX moves: MM0-7 alias the low 64 bits of the x87 registers (SDM vol. 1 9.2.1) ----

    private static bool IsMm(Iced.Intel.Register r) => r >= Iced.Intel.Register.MM0 && r <= Iced.Intel.Register.MM7;

    private static void SetMm(Cpu cpu, Iced.Intel.Register r, ulong value)
    {
        // An MMX write sets the exponent field to all ones, tags the register valid and TOP = 0.
        cpu.Fpu.Registers[r - Iced.Intel.Register.MM0] = new UInt128(0xFFFF, value);
        cpu.Fpu.Tag = 0;
        cpu.Fpu.Status &= 0xC7FF;
    }

    private static void MovdToMm(Cpu cpu, ref Instruction ins)
    {
        CheckMmx(cpu);
        var size = ins.Code == Code.Movd_mm_rm32 ? 4 : 8;
        var value = ins.Op1Kind == OpKind.Register && IsMm(ins.Op1Register)
            ? (ulong)cpu.Fpu.Registers[ins.Op1Register - Iced.Intel.Register.MM0]
            : cpu.ReadOp(ref ins, 1, size);
        SetMm(cpu, ins.Op0Register, value & Cpu.SizeMask(size));
    }

    private static void MovdFromMm(Cpu cpu, ref Instruction ins)
    {
        CheckMmx(cpu);
        var size = ins.Code == Code.Movd_rm32_mm ? 4 : 8;
        var value = (ulong)cpu.Fpu.Registers[ins.Op1Register - Iced.Intel.Register.MM0] & Cpu.SizeMask(size);
        if (ins.Op0Kind == OpKind.Register && IsMm(ins.Op0Register))
        {
            SetMm(cpu, ins.Op0Register, value);
        }
        else
        {
            cpu.WriteOp(ref ins, 0, size, value);
        }

        cpu.Fpu.Tag = 0;
    }

    /// <summary>PXOR/XORPS/XORPD xmm, xmm/m128 (a memory operand must be 16-byte aligned).</summary>
    private static void Xor128(Cpu cpu, ref Instruction ins)
    {
        CheckSse(cpu);
        UInt128 src;
        if (ins.Op1Kind == OpKind.Register)
        {
            src = cpu.Xmm[XmmIndex(ins.Op1Register)];
        }
        else
        {
            var la = cpu.MemoryLinear(ref ins);
            CheckAligned(la, 16);
            src = Read128(cpu, la);
        }

        cpu.Xmm[XmmIndex(ins.Op0Register)] ^= src;
    }

    /// <summary>MOVBE (offered when <see cref="CpuModel.Movbe"/>): a load or store with the bytes swapped.</summary>
    private static void Movbe(Cpu cpu, ref Instruction ins)
    {
        if (!cpu.Model.Movbe)
        {
            throw GuestFault.Ud();
        }

        var size = ins.Op0Kind == OpKind.Register ? Cpu.RegisterWidth(ins.Op0Register) : Cpu.RegisterWidth(ins.Op1Register);
        var value = cpu.ReadOp(ref ins, 1, size);
        var swapped = size switch
        {
            2 => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)value),
            4 => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)value),
            _ => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value),
        };
        cpu.WriteOp(ref ins, 0, size, swapped);
    }
}
