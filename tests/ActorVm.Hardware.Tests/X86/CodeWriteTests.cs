using ActorVm.Hardware.X86;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// Stores into decoded code go through the TLB's write fast path, which checks the page's live
/// "holds code" flag: a translation cached while the page held no code must still see that the
/// page was decoded since, by this vCPU or another one.
/// </summary>
public class CodeWriteTests
{
    private const ulong Patched = 0x20000;

    // mov eax, imm32 (B8 imm32); ret (C3): the immediate's low byte is at Patched + 1.
    private static void WriteMovEaxRet(Assembler a, byte value)
    {
        a.mov(__dword_ptr[(uint)Patched], 0xB8u | ((uint)value << 8));
        a.mov(__dword_ptr[(uint)Patched + 4], 0xC300u);
    }

    [Fact]
    public void AStoreThroughATranslationCachedBeforeThePageHeldCodeInvalidatesIt()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            WriteMovEaxRet(a, 1);                      // the TLB entry for the page is filled here
            a.call((uint)Patched);                     // decodes the page: it now holds code
            a.mov(ebx, eax);
            a.mov(__byte_ptr[(uint)Patched + 1], 2);   // same cached translation
            a.call((uint)Patched);
            a.hlt();
        });
        h.Cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal((1UL, 2UL), (h.Cpu.Gpr[Cpu.RBX], h.Cpu.Gpr[Cpu.RAX]));
    }

    [Fact]
    public void AnotherVcpusStoreThroughAnOlderTranslationInvalidatesCodeDecodedSince()
    {
        using var h = CpuHarness.CreateSmp(32, 2);
        var writer = h.Machine.Cpus[1];
        const ulong writerCode = 0x30000;

        // vCPU 1 caches a writable translation of the page before anything ran there.
        h.LoadBytes(writerCode, h.Assemble(a => { WriteMovEaxRet(a, 1); a.hlt(); }, writerCode));
        writer.Rip = writerCode;
        writer.Gpr[Cpu.RSP] = CpuHarness.StackTop - 0x800;
        Assert.Equal(ExitReason.Hlt, h.Run(writer).Reason);

        // vCPU 0 runs the code (decoding the page), vCPU 1 patches it, vCPU 0 runs it again.
        h.Load(a =>
        {
            a.call((uint)Patched);
            a.hlt();
            a.call((uint)Patched);
            a.hlt();
        });
        h.Cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;
        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(1UL, h.Cpu.Gpr[Cpu.RAX]);

        // HLT exits before retiring: complete it, then point vCPU 1 at its patch.
        writer.Complete();
        h.LoadBytes(writerCode, h.Assemble(a => { a.mov(__byte_ptr[(uint)Patched + 1], 7); a.hlt(); }, writerCode));
        writer.Rip = writerCode;
        Assert.Equal(ExitReason.Hlt, h.Run(writer).Reason);

        h.Cpu.Complete();
        h.Cpu.Halted = false;
        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(7UL, h.Cpu.Gpr[Cpu.RAX]);
    }

    [Fact]
    public void AStoreCrossingFromACachedDataPageIntoACodePageInvalidatesTheCode()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a =>
        {
            WriteMovEaxRet(a, 1);
            a.call((uint)Patched);                          // the code page is decoded
            a.mov(ebx, eax);
            a.mov(__dword_ptr[(uint)Patched - 0x1000], 0);  // the data page below is cached writable
            // Bytes FE FF of the page below, then B8 05 at Patched: "mov eax, 5".
            a.mov(__dword_ptr[(uint)Patched - 2], 0x05B8_0000u);
            a.call((uint)Patched);
            a.hlt();
        });
        h.Cpu.Gpr[Cpu.RSP] = CpuHarness.StackTop;

        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal((1UL, 5UL), (h.Cpu.Gpr[Cpu.RBX], h.Cpu.Gpr[Cpu.RAX]));
    }
}
