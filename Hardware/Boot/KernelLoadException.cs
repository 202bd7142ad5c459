namespace ActorVm.Hardware.Boot;

/// <summary>A kernel image that cannot be booted; the message is one line saying exactly why.</summary>
public sealed class KernelLoadException(string message) : Exception(message);
