using ActorVm.Hardware.Tests.Guests;
using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Tests.X86;

/// <summary>
/// The interpreter's behaviour tests, whole, with every block compiled on its first run
/// (<see cref="BlockCompiler"/> threshold 0), so that CI checks the composed methods as well as
/// the interpreter loop: fast forms against generic handlers, faults and block continuation,
/// stores into code, the programs and the guest programs against QEMU's goldens. The threshold is
/// process-wide, so this collection runs alone (after the parallel ones).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CompiledBlockModeTests
{
    public const string Name = "compiled blocks";

    /// <summary>Sets the default threshold to 0 for one test, and back.</summary>
    public sealed class Forced : IDisposable
    {
        private readonly int _before = BlockCompiler.DefaultThreshold;

        public Forced() => BlockCompiler.DefaultThreshold = 0;

        public void Dispose() => BlockCompiler.DefaultThreshold = _before;
    }
}

[Collection(CompiledBlockModeTests.Name)]
public sealed class CompiledFastFormsEquivalenceTests : FastFormsEquivalenceTests, IDisposable
{
    private readonly CompiledBlockModeTests.Forced _forced = new();

    public void Dispose() => _forced.Dispose();
}

[Collection(CompiledBlockModeTests.Name)]
public sealed class CompiledBlockContinuationTests : BlockContinuationTests, IDisposable
{
    private readonly CompiledBlockModeTests.Forced _forced = new();

    public void Dispose() => _forced.Dispose();
}

[Collection(CompiledBlockModeTests.Name)]
public sealed class CompiledCodeWriteTests : CodeWriteTests, IDisposable
{
    private readonly CompiledBlockModeTests.Forced _forced = new();

    public void Dispose() => _forced.Dispose();
}

[Collection(CompiledBlockModeTests.Name)]
public sealed class CompiledProgramTests : ProgramTests, IDisposable
{
    private readonly CompiledBlockModeTests.Forced _forced = new();

    public void Dispose() => _forced.Dispose();
}

[Collection(CompiledBlockModeTests.Name)]
public sealed class CompiledGuestProgramTests : GuestProgramTests, IDisposable
{
    private readonly CompiledBlockModeTests.Forced _forced = new();

    public void Dispose() => _forced.Dispose();
}

/// <summary>The collection's tests do run compiled: a CPU made under <see cref="CompiledBlockModeTests.Forced"/> compiles its first block.</summary>
[Collection(CompiledBlockModeTests.Name)]
public sealed class CompiledModeIsOnTests : IDisposable
{
    private readonly CompiledBlockModeTests.Forced _forced = new();

    [Fact]
    public void ACpuMadeInThisCollectionCompilesItsFirstBlock()
    {
        using var h = CpuHarness.Create(32);
        h.Load(a => { a.nop(); a.hlt(); });
        Assert.Equal(0, h.Cpu.BlockCompileThreshold);
        Assert.Equal(ExitReason.Hlt, h.Run().Reason);
        Assert.Equal(1, h.Cpu.BlocksCompiled);
    }

    public void Dispose() => _forced.Dispose();
}
