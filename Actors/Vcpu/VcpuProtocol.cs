using ActorVm.Actors.Stats;
using ActorVm.Hardware.X86;

namespace ActorVm.Actors.Vcpu;

/// <summary>KVM_RUN_* run_flags (spec §1.3, [S3]).</summary>
[Flags]
public enum RunFlags : ulong
{
    None = 0,
    ForceImmediateExit = 1,
    LoadGuestDr6 = 2,
    LoadDebugCtl = 4,
}

/// <summary>Messages between the run loop (common x86 layer) and the vCPU actor (vendor layer).</summary>
public static class VcpuProtocol
{
    public interface ICommand;

    public interface IEvent;

    /// <summary>
    /// vendor vcpu_run for one vcpu_enter_guest: E5-E10. <paramref name="Injection"/> is the event
    /// loaded for this entry; the window flags are the VMCS interrupt/NMI-window controls.
    /// </summary>
    public sealed record Run(RunFlags Flags, EventInjection? Injection, bool InterruptWindow, bool NmiWindow) : ICommand
    {
        public bool Force => (Flags & RunFlags.ForceImmediateExit) != 0;
    }

    /// <summary>E11 reached: the exit the run loop must handle (E12), with the fastpath's verdict.</summary>
    public sealed record VcpuExited(VmExit Exit, FastpathResult Fastpath, bool Forced) : IEvent;

    /// <summary>E7 refused the entry (a request or EXITING): the run loop runs cancel_injection and loops.</summary>
    public sealed record EntryCancelled(bool Forced, EventInjection? Injection) : IEvent;

    /// <summary>The next fastpath re-entry, re-sent to itself so the mailbox is served between slices.</summary>
    internal sealed record Reenter : ICommand
    {
        public static Reenter Instance { get; } = new();
    }
}
