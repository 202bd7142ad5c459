using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;
using Cpu = ActorVm.Hardware.X86.Cpu;

namespace ActorVm.Hardware.Tests.X86;

public class SystemInstructionTests
{
    private const ulong Code = CpuHarness.CodeBase;

    [Fact]
    public void InterruptWindowOpensOnlyAfterTheInstructionFollowingSti()
    {
        using var h = CpuHarness.Create(64);
        var afterShadow = Code + (ulong)SystemHarness.Length(64, a =>
        {
            a.cli();
            a.mov(eax, 1);
            a.sti();
            a.mov(ebx, 2);
        });
        h.Put(64, Code, a =>
        {
            a.cli();
            a.mov(eax, 1);
            a.sti();
            a.mov(ebx, 2);
            a.mov(ecx, 3);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        var exit = h.RunSystem(interruptWindow: true);

        Assert.Equal(ExitReason.InterruptWindow, exit.Reason);
        Assert.Equal(afterShadow, h.Cpu.Rip);
        Assert.Equal(2UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.False(h.Cpu.InterruptShadow);
    }

    [Fact]
    public void StiWithInterruptsAlreadyEnabledOpensNoShadow()
    {
        using var h = CpuHarness.Create(64);
        h.Put(64, Code, a =>
        {
            a.sti();
            a.mov(ebx, 2);
            a.hlt();
        });
        h.Cpu.Rip = Code;
        h.Cpu.SetFlagsRaw(0x202);

        // IF=1 and no shadow: the window is open before the first instruction.
        Assert.Equal(ExitReason.InterruptWindow, h.RunSystem(interruptWindow: true).Reason);
        Assert.Equal(Code, h.Cpu.Rip);
    }

    [Fact]
    public void MovSsBlocksInterruptsForOneInstruction()
    {
        using var h = CpuHarness.Create(64);
        h.Put(64, Code, a =>
        {
            a.mov(ax, CpuHarness.Data);
            a.mov(ss, ax);
            a.mov(ebx, 2);
            a.mov(ecx, 3);
            a.hlt();
        });
        h.Cpu.Rip = Code;
        h.Cpu.SetFlagsRaw(0x202);

        // The block ends at MOV SS (it opens the shadow); the budget then ends the slice.
        Assert.Equal(ExitReason.ExternalInterrupt, h.Cpu.Run(new VmEntry(InstructionBudget: 1)).Reason);
        Assert.True(h.Cpu.InterruptShadow);
        var exit = h.Cpu.Run(new VmEntry(InterruptWindowExiting: true));

        Assert.Equal(ExitReason.InterruptWindow, exit.Reason);
        Assert.Equal(2UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX]);
    }

    [Fact]
    public void CliAtCpl3WithIoplZeroIsGp()
    {
        using var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        ExceptionTests.FourKPages(h, user: true);
        ExceptionTests.UserSegmentsAndTss(h);
        h.Put(64, 0x9000, a => a.cli());
        ExceptionTests.IretFrame(h, 0x6F00, 0x9000, 0x33, 0x202, 0x5000, 0x3B);
        h.Put(64, Code, a =>
        {
            a.mov(ax, 0x40);
            a.ltr(ax);
            a.mov(rsp, 0x6F00);
            a.iretq();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(0x9000UL, h.Stack(1));
    }

    [Fact]
    public void Cr8ReadsBackTheTaskPriorityEvenWithTheApicDisabled()
    {
        using var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        h.Cpu.ApicBase &= ~MsrApicBase.Enable;
        h.Put(64, Code, a =>
        {
            a.mov(rax, 9);
            a.mov(cr8, rax);
            a.mov(rbx, cr8);
            a.mov(rax, 0x10);
            a.mov(cr8, rax);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(9UL, h.Cpu.Cr8);
        Assert.Equal(9UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(Vector.GP, h.HaltedInHandler()); // reserved bits 63:4
    }

    [Fact]
    public void StoreIntoTheCurrentBlockIsSeenByTheNextInstruction()
    {
        using var h = CpuHarness.Create(32);
        var store = SystemHarness.Length(32, a => a.mov(__byte_ptr[0], 0x42));
        var immediate = Code + (ulong)store + 1;
        h.Put(32, Code, a =>
        {
            a.mov(__byte_ptr[(long)immediate], 0x42);
            a.mov(al, 0x11);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        Assert.Equal(0x42UL, h.Cpu.Gpr[Cpu.RAX] & 0xFF);
    }

    [Fact]
    public void RewritingAnAlreadyDecodedBlockIsSeenWhenItRunsAgain()
    {
        using var h = CpuHarness.Create(32);
        h.Put(32, 0x9000, a =>
        {
            a.mov(al, 1);
            a.hlt();
        });
        h.Cpu.Rip = 0x9000;
        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);
        Assert.Equal(1UL, h.Cpu.Gpr[Cpu.RAX] & 0xFF);
        Assert.Null(h.Cpu.Complete()); // retire HLT
        h.Cpu.Halted = false;

        h.Put(32, Code, a =>
        {
            a.mov(__byte_ptr[0x9001], 7);
            a.jmp(CpuHarness.Code32, 0x9000);
        });
        h.Cpu.Rip = Code;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);
        Assert.Equal(7UL, h.Cpu.Gpr[Cpu.RAX] & 0xFF);
    }

    [Fact]
    public void DescriptorTableRegistersRoundTrip()
    {
        using var h = CpuHarness.Create(64);
        h.Machine.Memory.Write16(0x7E00, 0x1FF);
        h.Machine.Memory.Write64(0x7E02, 0xFFFF800000001000);
        h.Put(64, Code, a =>
        {
            a.sgdt(__[0x7D00]);
            a.lidt(__[0x7E00]);
            a.sidt(__[0x7D10]);
            a.str(bx);
            a.sldt(cx);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(h.Cpu.Gdtr.Limit, h.Machine.Memory.Read16(0x7D00));
        Assert.Equal(CpuHarness.GdtBase, h.Machine.Memory.Read64(0x7D02));
        Assert.Equal(0xFFFF800000001000UL, h.Cpu.Idtr.Base);
        Assert.Equal((ushort)0x1FF, h.Cpu.Idtr.Limit);
        Assert.Equal(0xFFFF800000001000UL, h.Machine.Memory.Read64(0x7D12));
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RBX] & 0xFFFF);
    }

    [Fact]
    public void Cr3ReloadMakesChangedPageTablesVisible()
    {
        using var h = CpuHarness.Create(64);
        ExceptionTests.FourKPages(h, user: false);
        h.Machine.Memory.Write32(0x50000, 0xAAAA);
        h.Machine.Memory.Write32(0x51000, 0xBBBB);
        h.Put(64, Code, a =>
        {
            a.mov(eax, __dword_ptr[0x50000]);
            a.mov(ebx, eax);
            // Remap linear 0x50000 to physical 0x51000, then reload CR3.
            a.mov(__qword_ptr[0x13000 + (0x50 * 8)], ecx);
            a.mov(rdx, cr3);
            a.mov(cr3, rdx);
            a.mov(eax, __dword_ptr[0x50000]);
            a.hlt();
        });
        h.Cpu.Gpr[Cpu.RCX] = 0x51003;
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(0xAAAAUL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(0xBBBBUL, h.Cpu.Gpr[Cpu.RAX]);
    }

    [Fact]
    public void RdtscReadsTheClockAndTsdMakesItPrivileged()
    {
        using var h = CpuHarness.Create(64);
        ((ManualTscClock)h.Machine.Clock).Set(0x1_2345_6789);
        h.Put(64, Code, a =>
        {
            a.rdtsc();
            a.hlt();
        });
        h.Cpu.Rip = Code;
        h.RunSystem();
        Assert.Equal(0x2345_6789UL, h.Cpu.Gpr[Cpu.RAX]);
        Assert.Equal(1UL, h.Cpu.Gpr[Cpu.RDX]);
    }

    [Fact]
    public void SwapgsExchangesGsBaseWithKernelGsBase()
    {
        using var h = CpuHarness.Create(64);
        h.Cpu.Seg[(int)SegReg.GS].Base = 0x1111;
        h.Cpu.Msrs[Msr.KernelGsBase] = 0x2222;
        h.Put(64, Code, a =>
        {
            a.swapgs();
            a.hlt();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(0x2222UL, h.Cpu.Seg[(int)SegReg.GS].Base);
        Assert.Equal(0x1111UL, h.Cpu.Msrs[Msr.KernelGsBase]);
    }

    [Fact]
    public void SyscallAndSysretqRoundTrip()
    {
        using var h = CpuHarness.Create(64);
        ExceptionTests.FourKPages(h, user: true); // SYSRET lands in ring 3
        h.Cpu.Efer |= EferBits.SCE;
        h.Cpu.Msrs[Msr.Star] = (0x28UL << 48) | (0x18UL << 32);
        h.Cpu.Msrs[Msr.Lstar] = 0x9000;
        h.Cpu.Msrs[Msr.Fmask] = Rflags.IF;
        h.Cpu.SetFlagsRaw(0x202);
        var next = Code + (ulong)SystemHarness.Length(64, a => a.syscall());
        h.Put(64, 0x9000, a =>
        {
            a.mov(ebx, 5);
            a.sysretq();
        });
        h.Put(64, Code, a =>
        {
            a.syscall();
            a.mov(edx, 7);
            a.vmcall();
        });
        h.Cpu.Rip = Code;

        var exit = h.RunSystem();

        Assert.Equal(ExitReason.Vmcall, exit.Reason);
        Assert.Equal(5UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(7UL, h.Cpu.Gpr[Cpu.RDX]);
        Assert.Equal(next, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Equal(3, h.Cpu.Cpl);
        Assert.Equal((ushort)(0x38 | 3), h.Cpu.Seg[(int)SegReg.CS].Selector);
        Assert.Equal((ushort)(0x30 | 3), h.Cpu.Seg[(int)SegReg.SS].Selector);
        Assert.True(h.Cpu.IF);
        Assert.Equal(64, h.Cpu.Bitness);
    }

    [Fact]
    public void VmcallExitsAndTheCompletionLandsInRax()
    {
        using var h = CpuHarness.Create(64);
        h.Put(64, Code, a =>
        {
            a.mov(eax, 10); // KVM_HC_SEND_IPI
            a.vmcall();
            a.mov(rbx, rax);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        var exit = h.RunSystem();
        Assert.Equal(ExitReason.Vmcall, exit.Reason);
        Assert.Equal(10UL, exit.Qualification);
        Assert.Equal(ExitReason.Hlt, h.RunAfter(h.Cpu.Complete(0)).Reason);
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RBX]);
    }

    [Fact]
    public void LmswSetsTsButCannotClearPe()
    {
        using var h = CpuHarness.Create(32);
        h.Put(32, Code, a =>
        {
            a.mov(eax, 8);
            a.lmsw(ax);
            a.smsw(ebx);
            a.clts();
            a.smsw(ecx);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.True(h.Cpu.ProtectedMode);
        Assert.Equal(Cr0Bits.TS | Cr0Bits.PE, h.Cpu.Gpr[Cpu.RBX] & (Cr0Bits.TS | Cr0Bits.PE));
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RCX] & Cr0Bits.TS);
    }
}

public class SystemFastCallTests
{
    [Fact]
    public void SysenterAndSysexitRoundTripIn32BitMode()
    {
        using var h = CpuHarness.Create(32);
        var cpu = h.Cpu;
        cpu.Msrs[Msr.SysenterCs] = CpuHarness.Code32;
        cpu.Msrs[Msr.SysenterEip] = 0x9000;
        cpu.Msrs[Msr.SysenterEsp] = 0x6000;
        cpu.SetFlagsRaw(0x202);
        h.Put(32, 0x9000, a =>
        {
            a.mov(ebx, esp);
            a.mov(edx, 0xA000);
            a.mov(ecx, 0x5000);
            a.sysexit();
        });
        h.Put(32, 0xA000, a => a.vmcall());
        h.Put(32, CpuHarness.CodeBase, a => a.sysenter());
        cpu.Rip = CpuHarness.CodeBase;

        var exit = h.RunSystem();

        Assert.Equal(ExitReason.Vmcall, exit.Reason);
        Assert.Equal(0x6000UL, cpu.Gpr[Cpu.RBX]);
        Assert.Equal(0x5000UL, cpu.Gpr[Cpu.RSP]);
        Assert.Equal(3, cpu.Cpl);
        Assert.Equal((ushort)(0x18 | 3), cpu.Seg[(int)SegReg.CS].Selector);
        Assert.Equal((ushort)(0x20 | 3), cpu.Seg[(int)SegReg.SS].Selector);
        Assert.False(cpu.IF);
        Assert.Equal(32, cpu.Bitness);
        Assert.NotEqual(0u, Cpuid.Query(cpu, 1, 0).Edx & (1u << 11)); // SEP now truthful
    }

    [Fact]
    public void SysenterWithoutAConfiguredSelectorIsGp()
    {
        using var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        h.Put(64, CpuHarness.CodeBase, a => a.sysenter());
        h.Cpu.Rip = CpuHarness.CodeBase;

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
    }
}
