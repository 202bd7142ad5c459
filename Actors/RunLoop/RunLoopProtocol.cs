namespace ActorVm.Actors.RunLoop;

/// <summary>Messages to a vCPU's RunLoopActor (besides the vCPU and LAPIC replies it awaits).</summary>
public static class RunLoopProtocol
{
    public interface ICommand;

    /// <summary>Begin vcpu_run (the BSP runs at once; an AP waits for INIT/SIPI).</summary>
    public sealed record Start : ICommand
    {
        public static Start Instance { get; } = new();
    }

    /// <summary>kvm_vcpu_wake_up: a kick found the vCPU blocked. May be spurious; check_block decides.</summary>
    public sealed record Wake : ICommand
    {
        public static Wake Instance { get; } = new();
    }

    /// <summary>Leave vcpu_run at the next boundary (as a signal would) and wait for <see cref="Resume"/>.</summary>
    public sealed record Pause : ICommand
    {
        public static Pause Instance { get; } = new();
    }

    public sealed record Resume : ICommand
    {
        public static Resume Instance { get; } = new();
    }

    /// <summary>Reply to <see cref="Pause"/> once the vCPU is outside the guest.</summary>
    public sealed record Paused(int Vcpu);
}
