namespace ActorVm.Actors.Stress;

/// <summary>Actor failure injection: the actor that throws <see cref="Vcpu.InjectedFailureException"/>.</summary>
public enum FailingActor
{
    None,
    Vcpu,
    RunLoop,
    Lapic,
}
