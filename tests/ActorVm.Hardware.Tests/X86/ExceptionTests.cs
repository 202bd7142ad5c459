using ActorVm.Hardware.X86;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Cpu = ActorVm.Hardware.X86.Cpu;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>Exception delivery: vectors, error codes, CR2, saved RIP, IRET back, #DF and triple fault.</summary>
public class ExceptionTests
{
    private const ulong Code = CpuHarness.CodeBase;

    private static CpuHarness Long(Action<Assembler> code)
    {
        var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        h.Put(64, Code, code);
        h.Cpu.Rip = Code;
        return h;
    }

    /// <summary>Asserts a 64-bit frame at RSP: [error code,] RIP, CS, RFLAGS, RSP, SS.</summary>
    private static void AssertFrame64(CpuHarness h, ulong rip, uint? errorCode, ulong oldRsp = CpuHarness.StackTop)
    {
        var i = 0;
        if (errorCode is { } e)
        {
            Assert.Equal(e, h.Stack(i++));
        }

        Assert.Equal(rip, h.Stack(i));
        Assert.Equal(CpuHarness.Code64, h.Stack(i + 1));
        Assert.Equal(oldRsp, h.Stack(i + 3));
        Assert.Equal(CpuHarness.Data, h.Stack(i + 4));
        Assert.Equal(((oldRsp & ~0xFUL) - 40) - (errorCode is null ? 0UL : 8), h.Cpu.Gpr[Cpu.RSP]);
    }

    [Fact]
    public void Ud2RaisesUdAtItsOwnAddress()
    {
        var lead = SystemHarness.Length(64, a => a.mov(eax, 1));
        using var h = Long(a =>
        {
            a.mov(eax, 1);
            a.ud2();
            a.hlt();
        });

        h.RunSystem();

        Assert.Equal(Vector.UD, h.HaltedInHandler());
        AssertFrame64(h, Code + (ulong)lead, null);
        Assert.Equal(1, h.Cpu.EventsDelivered[Vector.UD]);
    }

    [Fact]
    public void DivideByZeroRaisesDeAtTheDivide()
    {
        var lead = SystemHarness.Length(64, a =>
        {
            a.mov(eax, 10);
            a.mov(ecx, 0);
            a.mov(edx, 0);
        });
        using var h = Long(a =>
        {
            a.mov(eax, 10);
            a.mov(ecx, 0);
            a.mov(edx, 0);
            a.div(ecx);
            a.hlt();
        });

        h.RunSystem();

        // DIV belongs to the integer-ISA group; until it is registered it raises #UD at the same address.
        var expected = InstructionTable.IsImplemented(Iced.Intel.Code.Div_rm32) ? Vector.DE : Vector.UD;
        Assert.Equal(expected, h.HaltedInHandler());
        AssertFrame64(h, Code + (ulong)lead, null);
    }

    [Fact]
    public void InjectedDivideErrorIsDeliveredWithoutErrorCode()
    {
        using var h = Long(a => a.hlt());

        h.RunSystem(new EventInjection(Vector.DE, EventType.HardwareException));

        Assert.Equal(Vector.DE, h.HaltedInHandler());
        AssertFrame64(h, Code, null);
    }

    [Theory]
    [InlineData(false, false, 0x40000UL, 0u)]      // read, not present
    [InlineData(true, false, 0x40000UL, 2u)]       // write, not present
    [InlineData(true, true, 0x41000UL, 3u)]        // write to a read-only page with CR0.WP
    public void PageFaultsCarryErrorCodeAndCr2(bool write, bool wp, ulong address, uint errorCode)
    {
        using var h = Long(a =>
        {
            if (write)
            {
                a.mov(__dword_ptr[(long)address + 8], eax);
            }
            else
            {
                a.mov(eax, __dword_ptr[(long)address + 8]);
            }

            a.hlt();
        });
        FourKPages(h, user: false);
        if (wp)
        {
            h.Cpu.Cr0 |= Cr0Bits.WP;
        }

        h.RunSystem();

        Assert.Equal(Vector.PF, h.HaltedInHandler());
        Assert.Equal(address + 8, h.Cpu.Cr2);
        AssertFrame64(h, Code, errorCode);
    }

    [Theory]
    [InlineData(false, 0x42000UL, 5u)]   // user read of a supervisor page
    [InlineData(true, 0x41000UL, 7u)]    // user write to a read-only page
    [InlineData(false, 0x40000UL, 4u)]   // user read, not present
    public void UserModePageFaultsSwitchToTheTssStack(bool write, ulong address, uint errorCode)
    {
        using var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        FourKPages(h, user: true);
        UserSegmentsAndTss(h);
        const ulong user = 0x9000;
        h.Put(64, user, a =>
        {
            if (write)
            {
                a.mov(__qword_ptr[(long)address], rax);
            }
            else
            {
                a.mov(rax, __qword_ptr[(long)address]);
            }

            a.hlt();
        });
        // Kernel: LTR, then IRETQ into ring 3 through a prepared frame.
        IretFrame(h, 0x6F00, user, 0x33, 0x202, 0x5000, 0x3B);
        h.Put(64, Code, a =>
        {
            a.mov(ax, 0x40);
            a.ltr(ax);
            a.mov(rsp, 0x6F00);
            a.iretq();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(Vector.PF, h.HaltedInHandler());
        Assert.Equal(address, h.Cpu.Cr2);
        Assert.Equal(0, h.Cpu.Cpl);
        Assert.Equal(0x6000UL - 48, h.Cpu.Gpr[Cpu.RSP]);
        Assert.Equal(errorCode, h.Stack(0));
        Assert.Equal(user, h.Stack(1));
        Assert.Equal(0x33UL, h.Stack(2));
        Assert.Equal(0x202UL, h.Stack(3) & 0x202);
        Assert.Equal(0x5000UL, h.Stack(4));
        Assert.Equal(0x3BUL, h.Stack(5));
        Assert.Equal(0x8BUL, (h.Machine.Memory.Read64(CpuHarness.GdtBase + 0x40) >> 40) & 0xFF); // TSS now busy
        Assert.Equal((ushort)0x40, h.Cpu.Tr.Selector);
    }

    [Fact]
    public void FetchFromANotPresentPageFaultsAtTheTarget()
    {
        using var h = Long(a => a.jmp(__tword_ptr[0x7E00]));
        h.Machine.Memory.Write64(0x7E00, 0x40000);
        h.Machine.Memory.Write16(0x7E08, CpuHarness.Code64);
        FourKPages(h, user: false);
        h.Cpu.Efer |= EferBits.NXE;

        h.RunSystem();

        Assert.Equal(Vector.PF, h.HaltedInHandler());
        Assert.Equal(0x40000UL, h.Cpu.Cr2);
        AssertFrame64(h, 0x40000, 0x10); // instruction fetch, not present
    }

    [Fact]
    public void BadWrmsrRaisesGpAtTheExactInstruction()
    {
        var lead = SystemHarness.Length(64, a =>
        {
            a.mov(ecx, 0x12345678);
            a.mov(eax, 0);
            a.mov(edx, 0);
        });
        using var h = Long(a =>
        {
            a.mov(ecx, 0x12345678);
            a.mov(eax, 0);
            a.mov(edx, 0);
            a.wrmsr();
            a.hlt();
        });

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        AssertFrame64(h, Code + (ulong)lead, 0);
        Assert.False(h.Cpu.HasPendingInstruction && h.Cpu.Rip == Code + (ulong)lead);
    }

    [Fact]
    public void ReservedEferBitsAndUnknownRdmsrAreGp()
    {
        using var h = Long(a =>
        {
            a.mov(ecx, 0xC0000080);
            a.mov(eax, 0x10000);
            a.mov(edx, 0);
            a.wrmsr();
            a.hlt();
        });
        h.RunSystem();
        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(EferBits.LME | EferBits.LMA, h.Cpu.Efer);

        using var h2 = Long(a =>
        {
            a.mov(ecx, 0xDEAD);
            a.rdmsr();
            a.hlt();
        });
        h2.RunSystem();
        Assert.Equal(Vector.GP, h2.HaltedInHandler());
    }

    [Fact]
    public void LoadingANotPresentSegmentIsNpWithTheSelector()
    {
        var lead = SystemHarness.Length(64, a => a.mov(ax, 0x30));
        using var h = Long(a =>
        {
            a.mov(ax, 0x30);
            a.mov(ds, ax);
            a.hlt();
        });
        h.Descriptor(6, 0x00CF13000000FFFF); // data, P=0

        h.RunSystem();

        Assert.Equal(Vector.NP, h.HaltedInHandler());
        AssertFrame64(h, Code + (ulong)lead, 0x30);
    }

    [Fact]
    public void HandlersReturnWithIretq()
    {
        using var h = Long(a =>
        {
            a.mov(eax, 1);
            a.int3();
            a.ud2();
            a.mov(ebx, 2);
            a.hlt();
        });
        // #BP: a trap, returns after INT3. #UD: skips the 2-byte UD2 by editing the frame.
        h.Put(64, SystemHarness.HandlerBase + (16 * Vector.BP), a =>
        {
            a.mov(ecx, 3);
            a.iretq();
        });
        h.Put(64, 0x21000, a =>
        {
            a.add(__qword_ptr[rsp], 2);
            a.iretq();
        });
        h.Gate64(Vector.UD, 0x21000);
        h.Cpu.SetFlagsRaw(0x202);

        var exit = h.RunSystem();

        Assert.Equal(ExitReason.Hlt, exit.Reason);
        Assert.Equal(2UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(3UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Equal(CpuHarness.StackTop, h.Cpu.Gpr[Cpu.RSP]);
        Assert.True(h.Cpu.IF);
        Assert.Equal(1, h.Cpu.EventsDelivered[Vector.BP]);
        Assert.Equal(1, h.Cpu.EventsDelivered[Vector.UD]);
    }

    [Fact]
    public void IretUnblocksNmis()
    {
        using var h = Long(a => a.hlt());
        h.Put(64, SystemHarness.HandlerBase + (16 * Vector.NMI), a => a.iretq());

        h.Cpu.Run(new VmEntry(Injection: new EventInjection(Vector.NMI, EventType.Nmi), InstructionBudget: 0));
        Assert.True(h.Cpu.NmiBlocked);
        var exit = h.RunSystem();

        Assert.Equal(ExitReason.Hlt, exit.Reason);
        Assert.False(h.Cpu.NmiBlocked);
        Assert.Equal(Code, h.Cpu.Rip);
    }

    [Fact]
    public void FaultDeliveringPageFaultEscalatesToDoubleFault()
    {
        using var h = Long(a =>
        {
            a.mov(eax, __dword_ptr[0x40000]);
            a.hlt();
        });
        FourKPages(h, user: false);
        h.Gate64(Vector.PF, SystemHarness.HandlerBase + (16 * Vector.PF), present: false);

        h.RunSystem();

        Assert.Equal(Vector.DF, h.HaltedInHandler());
        AssertFrame64(h, Code, 0);
        Assert.Equal(0x40000UL, h.Cpu.Cr2);
        Assert.Equal(0, h.Cpu.EventsDelivered[Vector.PF]);
        Assert.Equal(1, h.Cpu.EventsDelivered[Vector.DF]);
    }

    [Fact]
    public void NothingPresentIsATripleFault()
    {
        using var h = CpuHarness.Create(64);
        h.Put(64, Code, a => a.ud2());
        h.Cpu.Rip = Code;
        h.Cpu.Idtr = new DescriptorTable { Base = SystemHarness.IdtBase, Limit = 0 };

        var exit = h.RunSystem();

        Assert.Equal(ExitReason.TripleFault, exit.Reason);
    }

    [Fact]
    public void ProtectedModeGpCarriesTheSelectorAndNoStackSwitch()
    {
        var lead = SystemHarness.Length(32, a => a.mov(ax, 0x7B));
        using var h = CpuHarness.Create(32);
        h.HaltingHandlers();
        h.Put(32, Code, a =>
        {
            a.mov(ax, 0x7B); // beyond the GDT limit
            a.mov(es, ax);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(CpuHarness.StackTop - 16, h.Cpu.Gpr[Cpu.RSP]);
        Assert.Equal(0x78u, h.Stack32(0));
        Assert.Equal((uint)(Code + (ulong)lead), h.Stack32(1));
        Assert.Equal((uint)CpuHarness.Code32, h.Stack32(2));
    }

    [Fact]
    public void RealModeSoftwareInterruptGoesThroughTheIvtAndIretReturns()
    {
        using var h = CpuHarness.Create(16);
        h.Machine.Memory.Write16(0x21 * 4, 0x0000);
        h.Machine.Memory.Write16((0x21 * 4) + 2, 0x0900);
        h.Put(16, 0x9000, a =>
        {
            a.mov(bx, 0x55);
            a.iret();
        });
        h.Put(16, Code, a =>
        {
            a.mov(ax, 1);
            a.@int(0x21);
            a.mov(cx, 2);
            a.hlt();
        });
        h.Cpu.Rip = Code;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        Assert.Equal(0x55UL, h.Cpu.Gpr[Cpu.RBX]);
        Assert.Equal(2UL, h.Cpu.Gpr[Cpu.RCX]);
        Assert.Equal(CpuHarness.StackTop, h.Cpu.Gpr[Cpu.RSP]);
        Assert.Equal((ushort)0, h.Cpu.Seg[(int)SegReg.CS].Selector);
    }

    [Fact]
    public void RealModeInjectedExceptionUsesTheIvt()
    {
        using var h = CpuHarness.Create(16);
        h.Machine.Memory.Write16(0, 0x0010);
        h.Machine.Memory.Write16(2, 0x0900);
        h.Put(16, 0x9010, a => a.hlt());
        h.Put(16, Code, a => a.hlt());
        h.Cpu.Rip = Code;

        h.RunSystem(new EventInjection(Vector.DE, EventType.HardwareException));

        Assert.Equal(0x10UL, h.Cpu.Rip);
        Assert.Equal((ushort)0x0900, h.Cpu.Seg[(int)SegReg.CS].Selector);
        Assert.Equal((ushort)Code, h.Machine.Memory.Read16(CpuHarness.StackTop - 6));
    }

    [Fact]
    public void SoftwareInterruptThroughAGateAboveCplIsGp()
    {
        using var h = CpuHarness.Create(64);
        h.HaltingHandlers();
        FourKPages(h, user: true);
        UserSegmentsAndTss(h);
        h.Put(64, 0x9000, a => a.@int(0x20)); // vector 0x20: beyond the IDT limit too, use 3 with DPL 0
        h.Put(64, 0x9100, a => a.int3());
        IretFrame(h, 0x6F00, 0x9100, 0x33, 0x2, 0x5000, 0x3B);
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
        Assert.Equal((ulong)((Vector.BP << 3) | 2), h.Stack(0));
        Assert.Equal(0x9100UL, h.Stack(1));
    }

    // ---- fixtures ----

    /// <summary>
    /// Replaces the first GiB's 1 GiB page by 4 KiB pages for the first 2 MiB: 0x40000 not
    /// present, 0x41000 read-only, 0x42000 supervisor-only; everything else user read/write when
    /// <paramref name="user"/>.
    /// </summary>
    internal static void FourKPages(CpuHarness h, bool user)
    {
        var m = h.Machine.Memory;
        ulong u = user ? 4UL : 0;
        const ulong pd = 0x12000, pt = 0x13000;
        m.Write64(CpuHarness.PageTables, (CpuHarness.PageTables + 0x1000) | 3 | u);
        m.Write64(CpuHarness.PageTables + 0x1000, pd | 3 | u);
        m.Write64(pd, pt | 3 | u);
        for (ulong i = 1; i < 512; i++)
        {
            m.Write64(pd + (i * 8), (i << 21) | 0x83 | u);
        }

        for (ulong i = 0; i < 512; i++)
        {
            var pa = i << 12;
            var flags = pa switch
            {
                0x40000 => 0UL,
                0x41000 => 1 | u,
                0x42000 => 3UL,
                _ => 3 | u,
            };
            m.Write64(pt + (i * 8), pa | flags);
        }

        h.Cpu.FlushTlb();
    }

    /// <summary>GDT 0x30 user code64, 0x38 user data, 0x40 a 64-bit TSS at <see cref="SystemHarness.TssBase"/> with RSP0 = 0x6000.</summary>
    internal static void UserSegmentsAndTss(CpuHarness h)
    {
        h.Descriptor(6, 0x00AFFB000000FFFF);
        h.Descriptor(7, 0x00CFF3000000FFFF);
        const ulong tss = SystemHarness.TssBase;
        h.Descriptor(8, 0x67 | ((tss & 0xFFFFFF) << 16) | (0x89UL << 40) | (((tss >> 24) & 0xFF) << 56));
        h.Descriptor(9, tss >> 32);
        h.Machine.Memory.Write64(tss + 4, 0x6000);
    }

    internal static void IretFrame(CpuHarness h, ulong at, ulong rip, ulong cs, ulong flags, ulong rsp, ulong ss)
    {
        var m = h.Machine.Memory;
        m.Write64(at, rip);
        m.Write64(at + 8, cs);
        m.Write64(at + 16, flags);
        m.Write64(at + 24, rsp);
        m.Write64(at + 32, ss);
    }
}

/// <summary>Privilege transitions in 32-bit protected mode: IRETD to ring 3, INT n through a DPL-3 gate with the TSS stack, and back.</summary>
public class ExceptionPrivilegeTests
{
    [Fact]
    public void Ring3SoftwareInterruptSwitchesToTheTssStackAndIretdReturns()
    {
        using var h = CpuHarness.Create(32);
        h.HaltingHandlers();
        h.Descriptor(6, 0x00CFFB000000FFFF); // 0x30 user code32
        h.Descriptor(7, 0x00CFF3000000FFFF); // 0x38 user data32
        const ulong tss = SystemHarness.TssBase;
        h.Descriptor(8, 0x67 | (tss << 16) | (0x89UL << 40));
        h.Machine.Memory.Write32(tss + 4, 0x6000);
        h.Machine.Memory.Write32(tss + 8, CpuHarness.Data);
        h.Put(32, 0x21000, a =>
        {
            a.mov(edx, 7);
            a.iretd();
        });
        h.Gate32(0x80, 0x21000, dpl: 3);
        h.UseIdt(0x81);
        var userHlt = 0x9000UL + (ulong)SystemHarness.Length(32, a =>
        {
            a.mov(ebx, 1);
            a.@int(0x80);
            a.mov(ecx, 2);
        }, 0x9000);
        h.Put(32, 0x9000, a =>
        {
            a.mov(ebx, 1);
            a.@int(0x80);
            a.mov(ecx, 2);
            a.hlt(); // #GP at CPL 3
        });
        var m = h.Machine.Memory;
        m.Write32(0x6F00, 0x9000);
        m.Write32(0x6F04, 0x33);
        m.Write32(0x6F08, 0x202);
        m.Write32(0x6F0C, 0x5000);
        m.Write32(0x6F10, 0x3B);
        h.Put(32, CpuHarness.CodeBase, a =>
        {
            a.mov(ax, 0x40);
            a.ltr(ax);
            a.mov(esp, 0x6F00);
            a.iretd();
        });
        h.Cpu.Rip = CpuHarness.CodeBase;

        h.RunSystem();

        var cpu = h.Cpu;
        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal(7UL, cpu.Gpr[Cpu.RDX]);
        Assert.Equal(2UL, cpu.Gpr[Cpu.RCX]);
        Assert.Equal(0x6000UL - 24, cpu.Gpr[Cpu.RSP]);
        Assert.Equal(0u, h.Stack32(0));
        Assert.Equal((uint)userHlt, h.Stack32(1));
        Assert.Equal(0x33u, h.Stack32(2));
        Assert.Equal(0x5000u, h.Stack32(4));
        Assert.Equal(0x3Bu, h.Stack32(5));
        Assert.Equal((ushort)0, cpu.Seg[(int)SegReg.DS].Selector); // nulled on the way out to ring 3
        Assert.Equal(1, cpu.EventsDelivered[0x80]);
    }

    [Fact]
    public void Ring3PortAccessFollowsTheTssIoBitmap()
    {
        using var h = CpuHarness.Create(32);
        h.HaltingHandlers();
        h.Descriptor(6, 0x00CFFB000000FFFF);
        h.Descriptor(7, 0x00CFF3000000FFFF);
        const ulong tss = SystemHarness.TssBase;
        const ulong limit = 0x68 + 32;
        h.Descriptor(8, limit | (tss << 16) | (0x89UL << 40));
        var m = h.Machine.Memory;
        m.Write32(tss + 4, 0x6000);
        m.Write32(tss + 8, CpuHarness.Data);
        m.Write16(tss + 0x66, 0x68);
        for (ulong i = 0; i < 32; i++)
        {
            m.Write8(tss + 0x68 + i, i == 0x10 ? (byte)0xFE : (byte)0xFF); // only port 0x80 allowed
        }

        var second = 0x9000UL + (ulong)SystemHarness.Length(32, a =>
        {
            a.mov(al, 5);
            a.@out(0x80, al);
        }, 0x9000);
        h.Put(32, 0x9000, a =>
        {
            a.mov(al, 5);
            a.@out(0x80, al);
            a.@out(0x81, al);
        });
        var seen = new List<uint>();
        h.Machine.Io.Register(0x80, 2, new Port(seen));
        m.Write32(0x6F00, 0x9000);
        m.Write32(0x6F04, 0x33);
        m.Write32(0x6F08, 0x2);
        m.Write32(0x6F0C, 0x5000);
        m.Write32(0x6F10, 0x3B);
        h.Put(32, CpuHarness.CodeBase, a =>
        {
            a.mov(ax, 0x40);
            a.ltr(ax);
            a.mov(esp, 0x6F00);
            a.iretd();
        });
        h.Cpu.Rip = CpuHarness.CodeBase;

        h.RunSystem();

        Assert.Equal(Vector.GP, h.HaltedInHandler());
        Assert.Equal((uint)second, h.Stack32(1));
        Assert.Equal([5u], seen);
    }

    private sealed class Port(List<uint> seen) : ActorVm.Hardware.Devices.IIoDevice
    {
        public uint In(ushort port, int size) => 0;

        public void Out(ushort port, int size, uint value) => seen.Add(value);
    }
}
