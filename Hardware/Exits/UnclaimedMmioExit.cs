using ActorVm.Hardware.X86;

namespace ActorVm.Hardware.Exits;

/// <summary>Counts of accesses to addresses with no RAM and no device, shared by every vCPU of a VM.</summary>
public sealed class UnclaimedMmioCounters
{
    private long _reads, _writes;

    public long Reads => Interlocked.Read(ref _reads);

    public long Writes => Interlocked.Read(ref _writes);

    internal void CountRead() => Interlocked.Increment(ref _reads);

    internal void CountWrite() => Interlocked.Increment(ref _writes);
}

/// <summary>
/// Handles EPT_VIOLATION (48) for guest-physical addresses with no RAM and no device as QEMU
/// does for unassigned memory (and KVM's emulator then completes): reads return all-ones of the
/// access size, writes are dropped. Returns the next exit if the replayed instruction ran into
/// another one (e.g. a read-modify-write's store).
/// </summary>
public static class UnclaimedMmioExit
{
    public static VmExit? Handle(Cpu cpu, in VmExit exit, UnclaimedMmioCounters? counters = null)
    {
        if (exit.Reason != ExitReason.EptViolation)
        {
            throw new ArgumentException($"not an EPT_VIOLATION exit: {exit.Reason.TraceName()}", nameof(exit));
        }

        if (exit.IsWrite)
        {
            counters?.CountWrite();
            return cpu.Complete();
        }

        counters?.CountRead();
        return cpu.Complete(Cpu.SizeMask(exit.Size == 0 ? 8 : exit.Size));
    }
}
