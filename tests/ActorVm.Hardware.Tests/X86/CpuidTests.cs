using System.Text;
using ActorVm.Hardware.Memory;
using ActorVm.Hardware.X86;
using static Iced.Intel.AssemblerRegisters;
using Cpu = ActorVm.Hardware.X86.Cpu;

namespace ActorVm.Hardware.Tests.X86;

public class CpuidTests
{
    private static string Ascii(params uint[] words) => Encoding.ASCII.GetString([.. words.SelectMany(BitConverter.GetBytes)]);

    [Fact]
    public void GuestCpuidExitsAndIsCompleted()
    {
        using var h = CpuHarness.Create(64);
        h.Put(64, 0x8000, a =>
        {
            a.mov(eax, 0);
            a.cpuid();
            a.mov(r8d, ebx);
            a.mov(r9d, edx);
            a.mov(r10d, ecx);
            a.mov(r11d, eax);
            a.hlt();
        });
        h.Cpu.Rip = 0x8000;

        // Note: `new VmEntry()` is the all-zero struct (deadline 0 = immediate exit 52), so name an argument.
        var exit = h.Cpu.Run(new VmEntry(InstructionBudget: long.MaxValue));
        Assert.Equal(ExitReason.Cpuid, exit.Reason);
        Assert.Equal(0x8000UL + 5, h.Cpu.Rip);
        Assert.Equal(ExitReason.Hlt, h.RunAfter(ActorVm.Hardware.Exits.CpuidExit.Handle(h.Cpu)).Reason);

        Assert.Equal("GenuineIntel", Ascii((uint)h.Cpu.Gpr[8], (uint)h.Cpu.Gpr[9], (uint)h.Cpu.Gpr[10]));
        Assert.Equal(Cpuid.MaxBasicLeaf, h.Cpu.Gpr[11]);
    }

    [Fact]
    public void ApicBitFollowsApicBaseEnableAtRunTime()
    {
        using var h = CpuHarness.Create(64);
        h.Put(64, 0x8000, a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(r8d, edx);
            a.mov(r9d, ebx);
            // IA32_APIC_BASE = 0xFEE00000 | BSP, EN clear.
            a.mov(ecx, 0x1B);
            a.mov(eax, 0xFEE00100u);
            a.mov(edx, 0);
            a.wrmsr();
            a.mov(eax, 1);
            a.cpuid();
            a.hlt();
        });
        h.Cpu.Rip = 0x8000;

        Assert.Equal(ExitReason.Hlt, h.RunSystem().Reason);

        Assert.NotEqual(0UL, h.Cpu.Gpr[8] & (1 << 9));
        Assert.Equal(0UL, h.Cpu.Gpr[Cpu.RDX] & (1 << 9));
        Assert.Equal(0UL, h.Cpu.Gpr[9] >> 24); // APIC ID of vCPU 0
        Assert.Equal(CpuModel.Default.Signature, (uint)h.Cpu.Gpr[Cpu.RAX]);
    }

    [Fact]
    public void Leaf1ReportsModelFlagsAndApicId()
    {
        using var memory = new GuestMemory(1 << 20);
        var cpu = new Cpu(5, memory, new ManualTscClock());
        var r = Cpuid.Query(cpu, 1, 0);
        Assert.Equal(5u, r.Ebx >> 24);
        Assert.NotEqual(0u, r.Ecx & (1u << 21)); // x2APIC
        Assert.NotEqual(0u, r.Ecx & (1u << 24)); // TSC-deadline
        Assert.NotEqual(0u, r.Ecx & (1u << 31)); // hypervisor
        Assert.NotEqual(0u, r.Ecx & (1u << 22)); // MOVBE (implemented in Simd)
        foreach (var bit in new[] { 0, 3, 4, 5, 6, 9, 13, 16, 24, 25, 26 })
        {
            Assert.True((r.Edx & (1u << bit)) != 0, $"CPUID.1:EDX bit {bit}");
        }

        var plain = new Cpu(0, memory, new ManualTscClock(), CpuModel.Default with { X2Apic = false, TscDeadline = false, Movbe = false });
        var p = Cpuid.Query(plain, 1, 0);
        Assert.Equal(0u, p.Ecx & ((1u << 21) | (1u << 24) | (1u << 22)));
    }

    [Fact]
    public void InstructionFeatureBitsFollowTheInstructionTable()
    {
        using var memory = new GuestMemory(1 << 20);
        var cpu = new Cpu(0, memory, new ManualTscClock());
        var r = Cpuid.Query(cpu, 1, 0);
        Assert.Equal(InstructionTable.IsImplemented(Iced.Intel.Code.Popcnt_r32_rm32), (r.Ecx & (1u << 23)) != 0);
        Assert.Equal(InstructionTable.IsImplemented(Iced.Intel.Code.Cmpxchg16b_m128), (r.Ecx & (1u << 13)) != 0);
        Assert.Equal(InstructionTable.IsImplemented(Iced.Intel.Code.Cmovo_r32_rm32), (r.Edx & (1u << 15)) != 0);
        Assert.Equal(0u, r.Ecx & 1); // no SSE3
    }

    [Fact]
    public void TopologyLeafReportsX2ApicId()
    {
        using var memory = new GuestMemory(1 << 20);
        var cpu = new Cpu(3, memory, new ManualTscClock(), CpuModel.Default with { LogicalProcessors = 4 });
        var smt = Cpuid.Query(cpu, 0xB, 0);
        var core = Cpuid.Query(cpu, 0xB, 1);
        var end = Cpuid.Query(cpu, 0xB, 2);
        Assert.Equal(3u, smt.Edx);
        Assert.Equal(3u, core.Edx);
        Assert.Equal(1u, smt.Ebx);
        Assert.Equal(4u, core.Ebx);
        Assert.Equal(1u, (smt.Ecx >> 8) & 0xFF);
        Assert.Equal(2u, (core.Ecx >> 8) & 0xFF);
        Assert.Equal(0u, (end.Ecx >> 8) & 0xFF);
        Assert.Equal(0u, end.Ebx);
    }

    [Fact]
    public void PmuKvmAndExtendedLeaves()
    {
        using var memory = new GuestMemory(1 << 20);
        var cpu = new Cpu(0, memory, new ManualTscClock());
        Assert.Equal(default, Cpuid.Query(cpu, 0xA, 0));

        var kvm = Cpuid.Query(cpu, 0x40000000, 0);
        Assert.Equal("KVMKVMKVM\0\0\0", Ascii(kvm.Ebx, kvm.Ecx, kvm.Edx));
        Assert.True(kvm.Eax >= 0x40000001);

        Assert.Equal(0x80000008u, Cpuid.Query(cpu, 0x80000000, 0).Eax);
        var ext = Cpuid.Query(cpu, 0x80000001, 0);
        Assert.NotEqual(0u, ext.Edx & (1u << 29)); // LM
        Assert.NotEqual(0u, ext.Edx & (1u << 20)); // NX
        Assert.NotEqual(0u, ext.Edx & (1u << 26)); // 1 GiB pages
        Assert.NotEqual(0u, ext.Edx & (1u << 27)); // RDTSCP
        Assert.Equal(40u, Cpuid.Query(cpu, 0x80000008, 0).Eax & 0xFF);
        Assert.Equal(48u, (Cpuid.Query(cpu, 0x80000008, 0).Eax >> 8) & 0xFF);
    }

    [Theory]
    [InlineData(0x16u)]
    [InlineData(0x1234u)]
    [InlineData(0x40000010u)]
    [InlineData(0x80000009u)]
    [InlineData(0xC0000000u)]
    public void UnknownLeavesReturnTheHighestBasicLeaf(uint leaf)
    {
        using var memory = new GuestMemory(1 << 20);
        var cpu = new Cpu(0, memory, new ManualTscClock());
        Assert.Equal(Cpuid.Query(cpu, Cpuid.MaxBasicLeaf, 0), Cpuid.Query(cpu, leaf, 0));
    }

    [Fact]
    public void ApicBaseAboveMaxPhysAddrIsRejected()
    {
        using var memory = new GuestMemory(1 << 20);
        var cpu = new Cpu(0, memory, new ManualTscClock());
        Assert.False(cpu.TryWriteApicBase((1UL << 40) | 0xFEE00900));
        Assert.False(cpu.TryWriteApicBase(0xFEE00001 | MsrApicBase.Enable));
        Assert.False(cpu.TryWriteApicBase(0xFEE00000 | MsrApicBase.X2Apic)); // EXTD without EN
        Assert.True(cpu.TryWriteApicBase(0xFED00000 | MsrApicBase.Enable | MsrApicBase.Bsp));
        Assert.Equal(0xFED00000UL | MsrApicBase.Enable | MsrApicBase.Bsp, cpu.ApicBase);
    }
}
