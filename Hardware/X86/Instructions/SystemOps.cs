using Iced.Intel;

namespace ActorVm.Hardware.X86.Instructions;

/// <summary>System instructions (SDM vol. 2; VM-exit behaviour per SDM vol. 3 chapter 26).</summary>
internal static unsafe class SystemOps
{
    public static void Register(InstructionTable.Builder b)
    {
        b.Add(&Hlt, Code.Hlt);
        b.Add(&CpuidOp, Code.Cpuid);
        b.Add(&Rdmsr, Code.Rdmsr);
        b.Add(&Wrmsr, Code.Wrmsr);
        b.Add(&Rdtsc, Code.Rdtsc);
        b.Add(&Rdtscp, Code.Rdtscp);
        b.Add(&Cli, Code.Cli);
        b.Add(&Sti, Code.Sti);
        b.Add(&Nothing, Code.Pause, Code.Lfence, Code.Lfence_E9, Code.Lfence_EA, Code.Lfence_EB, Code.Lfence_EC,
            Code.Lfence_ED, Code.Lfence_EE, Code.Lfence_EF, Code.Mfence, Code.Mfence_F1, Code.Mfence_F2, Code.Mfence_F3,
            Code.Mfence_F4, Code.Mfence_F5, Code.Mfence_F6, Code.Mfence_F7, Code.Sfence, Code.Sfence_F9, Code.Sfence_FA,
            Code.Sfence_FB, Code.Sfence_FC, Code.Sfence_FD, Code.Sfence_FE, Code.Sfence_FF);
        b.Add(&CacheControl, Code.Wbinvd, Code.Invd);
        b.Add(&MovFromCr, Code.Mov_r32_cr, Code.Mov_r64_cr);
        b.Add(&MovToCr, Code.Mov_cr_r32, Code.Mov_cr_r64);
        b.Add(&MovFromDr, Code.Mov_r32_dr, Code.Mov_r64_dr);
        b.Add(&MovToDr, Code.Mov_dr_r32, Code.Mov_dr_r64);
        b.Add(&Invlpg, Code.Invlpg_m);
        b.Add(&Clts, Code.Clts);
        b.Add(&Lmsw, Code.Lmsw_rm16, Code.Lmsw_r32m16, Code.Lmsw_r64m16);
        b.Add(&Smsw, Code.Smsw_rm16, Code.Smsw_r32m16, Code.Smsw_r64m16);
        b.Add(&Ud2, Code.Ud2);
        b.Add(&Lgdt, Code.Lgdt_m1632_16, Code.Lgdt_m1632, Code.Lgdt_m1664);
        b.Add(&Lidt, Code.Lidt_m1632_16, Code.Lidt_m1632, Code.Lidt_m1664);
        b.Add(&Sgdt, Code.Sgdt_m1632_16, Code.Sgdt_m1632, Code.Sgdt_m1664);
        b.Add(&Sidt, Code.Sidt_m1632_16, Code.Sidt_m1632, Code.Sidt_m1664);
        b.Add(&Lldt, Code.Lldt_rm16, Code.Lldt_r32m16, Code.Lldt_r64m16);
        b.Add(&Sldt, Code.Sldt_rm16, Code.Sldt_r32m16, Code.Sldt_r64m16);
        b.Add(&Ltr, Code.Ltr_rm16, Code.Ltr_r32m16, Code.Ltr_r64m16);
        b.Add(&Str, Code.Str_rm16, Code.Str_r32m16, Code.Str_r64m16);
        b.Add(&Swapgs, Code.Swapgs);
        b.Add(&Syscall, Code.Syscall);
        b.Add(&Sysret, Code.Sysretd, Code.Sysretq);
        b.Add(&Vmcall, Code.Vmcall);
        b.Add(&Sysenter, Code.Sysenter);
        b.Add(&Sysexit, Code.Sysexitd, Code.Sysexitq);
    }

    private static void RequireCpl0(Cpu cpu)
    {
        if (cpu.Cpl != 0)
        {
            throw GuestFault.Gp();
        }
    }

    /// <summary>HLT: #GP at CPL&gt;0; otherwise exit 12, and the completed instruction halts the vCPU.</summary>
    private static void Hlt(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        if (cpu.TakeCompletion(out _))
        {
            cpu.Halted = true;
            return;
        }

        cpu.RequestExit(new VmExit(ExitReason.Hlt));
    }

    /// <summary>CPUID always exits (10); the handler supplies EAX, EBX, ECX, EDX (<see cref="Exits.CpuidExit"/>).</summary>
    private static void CpuidOp(Cpu cpu, ref Instruction ins)
    {
        if (cpu.TakeCompletion(out var eax))
        {
            cpu.TakeCompletion(out var ebx);
            cpu.TakeCompletion(out var ecx);
            cpu.TakeCompletion(out var edx);
            cpu.Gpr[Cpu.RAX] = (uint)eax;
            cpu.Gpr[Cpu.RBX] = (uint)ebx;
            cpu.Gpr[Cpu.RCX] = (uint)ecx;
            cpu.Gpr[Cpu.RDX] = (uint)edx;
            return;
        }

        cpu.RequestExit(new VmExit(ExitReason.Cpuid, Qualification: (uint)cpu.Gpr[Cpu.RAX], Value: (uint)cpu.Gpr[Cpu.RCX]));
    }

    /// <summary>RDMSR: #GP at CPL&gt;0, else exit 31 with ECX in the qualification; the completion is EDX:EAX.</summary>
    private static void Rdmsr(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        if (cpu.TakeCompletion(out var value))
        {
            cpu.Gpr[Cpu.RAX] = (uint)value;
            cpu.Gpr[Cpu.RDX] = value >> 32;
            return;
        }

        cpu.RequestExit(new VmExit(ExitReason.MsrRead, Qualification: (uint)cpu.Gpr[Cpu.RCX]));
    }

    /// <summary>WRMSR: #GP at CPL&gt;0, else exit 32 with ECX in the qualification and EDX:EAX in Value.</summary>
    private static void Wrmsr(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        if (cpu.TakeCompletion(out _))
        {
            // EFER, FS/GS base … may change how the following code runs.
            cpu.BreakBlock();
            return;
        }

        var value = ((cpu.Gpr[Cpu.RDX] & 0xFFFFFFFF) << 32) | (uint)cpu.Gpr[Cpu.RAX];
        cpu.RequestExit(new VmExit(ExitReason.MsrWrite, Qualification: (uint)cpu.Gpr[Cpu.RCX], Value: value, IsWrite: true));
    }

    private static void CheckTsd(Cpu cpu)
    {
        if ((cpu.Cr4 & Cr4Bits.TSD) != 0 && cpu.Cpl != 0 && cpu.ProtectedMode)
        {
            throw GuestFault.Gp();
        }
    }

    private static void Rdtsc(Cpu cpu, ref Instruction ins)
    {
        CheckTsd(cpu);
        var tsc = cpu.ReadTsc();
        cpu.Gpr[Cpu.RAX] = (uint)tsc;
        cpu.Gpr[Cpu.RDX] = tsc >> 32;
    }

    private static void Rdtscp(Cpu cpu, ref Instruction ins)
    {
        CheckTsd(cpu);
        var tsc = cpu.ReadTsc();
        cpu.Gpr[Cpu.RAX] = (uint)tsc;
        cpu.Gpr[Cpu.RDX] = tsc >> 32;
        cpu.Gpr[Cpu.RCX] = (uint)cpu.Msrs[Msr.TscAux];
    }

    /// <summary>CLI/STI: allowed in real mode and at CPL ≤ IOPL (VME/PVI are not offered), else #GP(0).</summary>
    private static void CheckIopl(Cpu cpu)
    {
        if (cpu.ProtectedMode && cpu.Cpl > cpu.Iopl)
        {
            throw GuestFault.Gp();
        }
    }

    private static void Cli(Cpu cpu, ref Instruction ins)
    {
        CheckIopl(cpu);
        cpu.SetControlFlag(Rflags.IF, false);
    }

    /// <summary>STI with IF=0 opens the one-instruction interrupt shadow (SDM 6.8.3).</summary>
    private static void Sti(Cpu cpu, ref Instruction ins)
    {
        CheckIopl(cpu);
        if (!cpu.IF)
        {
            cpu.SetControlFlag(Rflags.IF, true);
            cpu.SetInterruptShadow();
        }
    }

    /// <summary>PAUSE, the fences and ENDBR: ordering and hints with no architectural effect here (memory is sequentially consistent per vCPU).</summary>
    private static void Nothing(Cpu cpu, ref Instruction ins)
    {
    }

    /// <summary>WBINVD/INVD: privileged; caches are not modelled.</summary>
    private static void CacheControl(Cpu cpu, ref Instruction ins) => RequireCpl0(cpu);

    private static void MovFromCr(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        var value = ins.Op1Register switch
        {
            Iced.Intel.Register.CR0 => cpu.Cr0,
            Iced.Intel.Register.CR2 => cpu.Cr2,
            Iced.Intel.Register.CR3 => cpu.Cr3,
            Iced.Intel.Register.CR4 => cpu.Cr4,
            Iced.Intel.Register.CR8 => cpu.Cr8,
            _ => throw GuestFault.Ud(),
        };
        cpu.WriteReg(ins.Op0Register, value);
    }

    private static void MovToCr(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        var value = cpu.ReadReg(ins.Op1Register);
        switch (ins.Op0Register)
        {
            case Iced.Intel.Register.CR0: cpu.WriteCr0(value); break;
            case Iced.Intel.Register.CR2: cpu.Cr2 = value; break;
            case Iced.Intel.Register.CR3: cpu.WriteCr3(value); break;
            case Iced.Intel.Register.CR4: cpu.WriteCr4(value); break;
            case Iced.Intel.Register.CR8: cpu.WriteCr8(value); break;
            default: throw GuestFault.Ud();
        }
    }

    /// <summary>DR4/DR5 alias DR6/DR7 unless CR4.DE, which makes them #UD.</summary>
    private static int DebugIndex(Cpu cpu, Iced.Intel.Register r)
    {
        var n = r - Iced.Intel.Register.DR0;
        if (n is 4 or 5)
        {
            if ((cpu.Cr4 & Cr4Bits.DE) != 0)
            {
                throw GuestFault.Ud();
            }

            n += 2;
        }

        if (n > 7)
        {
            throw GuestFault.Ud();
        }

        return n;
    }

    private static void MovFromDr(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        var n = DebugIndex(cpu, ins.Op1Register);
        cpu.WriteReg(ins.Op0Register, n switch { < 4 => cpu.Dr[n], 6 => cpu.Dr6, _ => cpu.Dr7 });
    }

    private static void MovToDr(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        var n = DebugIndex(cpu, ins.Op0Register);
        var value = cpu.ReadReg(ins.Op1Register);
        if (n < 4)
        {
            cpu.Dr[n] = value;
            return;
        }

        if ((value >> 32) != 0)
        {
            throw GuestFault.Gp();
        }

        // Breakpoints are stored, not armed: DR6/DR7 keep their fixed bits (SDM 18.2.3-4).
        if (n == 6)
        {
            cpu.Dr6 = (value & 0x1E00F) | 0xFFFF0FF0;
        }
        else
        {
            cpu.Dr7 = (value & 0xFFFF2BFF) | 0x400;
        }
    }

    /// <summary>INVLPG: the TLB does not know page sizes, so dropping one 4 KiB entry could leave a large page's siblings; flush it all.</summary>
    private static void Invlpg(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        cpu.FlushTlb();
        cpu.BreakBlock();
    }

    private static void Clts(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        cpu.Cr0 &= ~Cr0Bits.TS;
    }

    /// <summary>LMSW: loads PE, MP, EM, TS; cannot clear PE (SDM vol. 2 LMSW).</summary>
    private static void Lmsw(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        var src = cpu.ReadOp(ref ins, 0, 2) & 0xF;
        var value = (cpu.Cr0 & ~0xEUL) | src | (cpu.Cr0 & Cr0Bits.PE);
        cpu.WriteCr0(value);
    }

    /// <summary>SMSW: CR0 into a register (operand size) or its low 16 bits into memory; not privileged (no UMIP).</summary>
    private static void Smsw(Cpu cpu, ref Instruction ins)
    {
        if (ins.Op0Kind == OpKind.Register)
        {
            cpu.WriteReg(ins.Op0Register, cpu.Cr0 & Cpu.SizeMask(Cpu.RegisterWidth(ins.Op0Register)));
        }
        else
        {
            cpu.WriteLinear(cpu.MemoryLinear(ref ins), 2, (ushort)cpu.Cr0);
        }
    }

    private static void Ud2(Cpu cpu, ref Instruction ins) => throw GuestFault.Ud();

    // ---- descriptor-table registers ----

    private static DescriptorTable ReadPseudoDescriptor(Cpu cpu, ref Instruction ins)
    {
        var la = cpu.MemoryLinear(ref ins);
        var limit = (ushort)cpu.ReadLinear(la, 2);
        ulong @base = cpu.Is64BitMode ? cpu.ReadLinear(la + 2, 8) : cpu.ReadLinear(la + 2, 4);
        if (ins.Code is Code.Lgdt_m1632_16 or Code.Lidt_m1632_16)
        {
            @base &= 0xFFFFFF; // 16-bit operand size: a 24-bit base (SDM LGDT)
        }

        if (cpu.Is64BitMode && (ulong)((long)(@base << 16) >> 16) != @base)
        {
            throw GuestFault.Gp();
        }

        return new DescriptorTable { Base = @base, Limit = limit };
    }

    private static void WritePseudoDescriptor(Cpu cpu, ref Instruction ins, DescriptorTable t)
    {
        var la = cpu.MemoryLinear(ref ins);
        var size = cpu.Is64BitMode ? 8 : 4;
        cpu.Translate(la, AccessKind.Write);
        cpu.Translate(la + 1 + (ulong)size, AccessKind.Write);
        cpu.WriteLinear(la, 2, t.Limit);
        cpu.WriteLinear(la + 2, size, size == 8 ? t.Base : (uint)t.Base);
    }

    private static void Lgdt(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        cpu.Gdtr = ReadPseudoDescriptor(cpu, ref ins);
    }

    private static void Lidt(Cpu cpu, ref Instruction ins)
    {
        RequireCpl0(cpu);
        cpu.Idtr = ReadPseudoDescriptor(cpu, ref ins);
    }

    private static void Sgdt(Cpu cpu, ref Instruction ins) => WritePseudoDescriptor(cpu, ref ins, cpu.Gdtr);

    private static void Sidt(Cpu cpu, ref Instruction ins) => WritePseudoDescriptor(cpu, ref ins, cpu.Idtr);

    /// <summary>LLDT/LTR/SLDT/STR exist only in protected mode (#UD in real mode, SDM vol. 2).</summary>
    private static void RequireProtected(Cpu cpu)
    {
        if (!cpu.ProtectedMode || (cpu.Flags & Rflags.VM) != 0)
        {
            throw GuestFault.Ud();
        }
    }

    private static void Lldt(Cpu cpu, ref Instruction ins)
    {
        RequireProtected(cpu);
        RequireCpl0(cpu);
        cpu.LoadLdt((ushort)cpu.ReadOp(ref ins, 0, 2));
    }

    private static void Ltr(Cpu cpu, ref Instruction ins)
    {
        RequireProtected(cpu);
        RequireCpl0(cpu);
        cpu.LoadTaskRegister((ushort)cpu.ReadOp(ref ins, 0, 2));
    }

    private static void StoreSelector(Cpu cpu, ref Instruction ins, ushort selector)
    {
        RequireProtected(cpu);
        if (ins.Op0Kind == OpKind.Register)
        {
            cpu.WriteReg(ins.Op0Register, selector);
        }
        else
        {
            cpu.WriteLinear(cpu.MemoryLinear(ref ins), 2, selector);
        }
    }

    private static void Sldt(Cpu cpu, ref Instruction ins) => StoreSelector(cpu, ref ins, cpu.Ldtr.Selector);

    private static void Str(Cpu cpu, ref Instruction ins) => StoreSelector(cpu, ref ins, cpu.Tr.Selector);

    // ---- 64-bit system calls ----

    /// <summary>SWAPGS: 64-bit mode only (#UD elsewhere), CPL 0; exchanges GS.base and IA32_KERNEL_GS_BASE.</summary>
    private static void Swapgs(Cpu cpu, ref Instruction ins)
    {
        if (!cpu.Is64BitMode)
        {
            throw GuestFault.Ud();
        }

        RequireCpl0(cpu);
        ref var gs = ref cpu.Seg[(int)SegReg.GS];
        (gs.Base, cpu.Msrs[Msr.KernelGsBase]) = (cpu.Msrs[Msr.KernelGsBase], gs.Base);
    }

    /// <summary>SYSCALL (SDM vol. 2): IA-32e mode with EFER.SCE only; flat CS/SS from STAR[47:32], RIP from LSTAR (CSTAR in compatibility mode).</summary>
    private static void Syscall(Cpu cpu, ref Instruction ins)
    {
        if (!cpu.LongModeActive || (cpu.Efer & EferBits.SCE) == 0)
        {
            throw GuestFault.Ud();
        }

        var selector = (ushort)((cpu.Msrs[Msr.Star] >> 32) & 0xFFFC);
        var compat = !cpu.Is64BitMode;
        cpu.Gpr[Cpu.RCX] = cpu.Rip;
        cpu.Gpr[11] = cpu.Flags & ~Rflags.RF;
        cpu.SetFlagsRaw(cpu.Flags & ~cpu.Msrs[Msr.Fmask] & ~Rflags.RF);
        cpu.Seg[(int)SegReg.CS] = new Segment { Selector = selector, Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xA09B };
        cpu.Seg[(int)SegReg.SS] = new Segment { Selector = (ushort)(selector + 8), Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
        cpu.Rip = compat ? cpu.Msrs[Msr.Cstar] : cpu.Msrs[Msr.Lstar];
        cpu.FlushTlb();
        cpu.UpdateMode();
    }

    /// <summary>SYSRET: back to CPL 3, 64-bit (REX.W) or compatibility mode; CS/SS from STAR[63:48].</summary>
    private static void Sysret(Cpu cpu, ref Instruction ins)
    {
        if (!cpu.LongModeActive || (cpu.Efer & EferBits.SCE) == 0)
        {
            throw GuestFault.Ud();
        }

        RequireCpl0(cpu);
        var to64 = ins.Code == Code.Sysretq;
        var rcx = cpu.Gpr[Cpu.RCX];
        if (to64 && (ulong)((long)(rcx << 16) >> 16) != rcx)
        {
            throw GuestFault.Gp();
        }

        var star = (ushort)(cpu.Msrs[Msr.Star] >> 48);
        var cs = (ushort)((to64 ? star + 16 : star) | 3);
        cpu.SetFlagsRaw((cpu.Gpr[11] & 0x3C7FD7) | Rflags.Reserved1);
        cpu.Seg[(int)SegReg.CS] = new Segment
        {
            Selector = cs, Base = 0, Limit = 0xFFFFFFFF, Attributes = (ushort)(to64 ? 0xA0FB : 0xC0FB),
        };
        cpu.Seg[(int)SegReg.SS] = new Segment { Selector = (ushort)((star + 8) | 3), Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC0F3 };
        cpu.Rip = to64 ? rcx : (uint)rcx;
        cpu.FlushTlb();
        cpu.UpdateMode();
    }

    /// <summary>SYSENTER (SDM vol. 2): flat ring-0 CS/SS from IA32_SYSENTER_CS (64-bit code in IA-32e mode), EIP/ESP from the MSRs; clears IF, VM, RF.</summary>
    private static void Sysenter(Cpu cpu, ref Instruction ins)
    {
        var cs = (ushort)(cpu.Msrs[Msr.SysenterCs] & 0xFFFC);
        if (!cpu.ProtectedMode || cs == 0)
        {
            throw GuestFault.Gp();
        }

        var longMode = cpu.LongModeActive;
        cpu.SetFlagsRaw(cpu.Flags & ~(Rflags.IF | Rflags.VM | Rflags.RF));
        cpu.Seg[(int)SegReg.CS] = new Segment { Selector = cs, Base = 0, Limit = 0xFFFFFFFF, Attributes = (ushort)(longMode ? 0xA09B : 0xC09B) };
        cpu.Seg[(int)SegReg.SS] = new Segment { Selector = (ushort)(cs + 8), Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
        cpu.Rip = longMode ? cpu.Msrs[Msr.SysenterEip] : (uint)cpu.Msrs[Msr.SysenterEip];
        cpu.Gpr[Cpu.RSP] = longMode ? cpu.Msrs[Msr.SysenterEsp] : (uint)cpu.Msrs[Msr.SysenterEsp];
        cpu.FlushTlb();
        cpu.UpdateMode();
    }

    /// <summary>SYSEXIT: back to ring 3 at RDX/EDX with RSP = RCX/ECX; CS = SYSENTER_CS + 16 (32-bit) or + 32 (REX.W, 64-bit).</summary>
    private static void Sysexit(Cpu cpu, ref Instruction ins)
    {
        var baseSelector = (ushort)(cpu.Msrs[Msr.SysenterCs] & 0xFFFC);
        if (!cpu.ProtectedMode || baseSelector == 0)
        {
            throw GuestFault.Gp();
        }

        RequireCpl0(cpu);
        var to64 = ins.Code == Code.Sysexitq;
        var rip = cpu.Gpr[Cpu.RDX];
        var rsp = cpu.Gpr[Cpu.RCX];
        if (to64 && ((ulong)((long)(rip << 16) >> 16) != rip || (ulong)((long)(rsp << 16) >> 16) != rsp))
        {
            throw GuestFault.Gp();
        }

        var cs = (ushort)((baseSelector + (to64 ? 32 : 16)) | 3);
        cpu.Seg[(int)SegReg.CS] = new Segment { Selector = cs, Base = 0, Limit = 0xFFFFFFFF, Attributes = (ushort)(to64 ? 0xA0FB : 0xC0FB) };
        cpu.Seg[(int)SegReg.SS] = new Segment { Selector = (ushort)((baseSelector + (to64 ? 40 : 24)) | 3), Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC0F3 };
        cpu.Rip = to64 ? rip : (uint)rip;
        cpu.Gpr[Cpu.RSP] = to64 ? rsp : (uint)rsp;
        cpu.FlushTlb();
        cpu.UpdateMode();
    }

    /// <summary>
    /// VMCALL: always exits (18), as in VMX non-root operation; the run loop performs the KVM
    /// hypercall (RAX = number, RBX/RCX/RDX/RSI = arguments) and completes with the RAX result.
    /// </summary>
    private static void Vmcall(Cpu cpu, ref Instruction ins)
    {
        if (cpu.TakeCompletion(out var result))
        {
            cpu.Gpr[Cpu.RAX] = result;
            return;
        }

        cpu.RequestExit(new VmExit(ExitReason.Vmcall, Qualification: cpu.Gpr[Cpu.RAX]));
    }
}
