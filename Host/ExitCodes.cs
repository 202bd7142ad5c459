namespace ActorVm.Host;

/// <summary>
/// Process exit statuses of <c>actorvm run</c>. A guest that writes the debug-exit port ends the
/// process with (V &lt;&lt; 1) | 1, which is always odd; the host's own statuses are even, so
/// the two never collide.
/// </summary>
public static class ExitCodes
{
    /// <summary>The guest stopped cleanly (halted with nothing to wake it) without using debug-exit.</summary>
    public const int Clean = 0;

    /// <summary>Bad options, a missing or malformed kernel image, or too little memory for it.</summary>
    public const int InvalidInput = 2;

    /// <summary>The guest triple-faulted (shutdown).</summary>
    public const int TripleFault = 4;

    /// <summary>The wall-time or guest-instruction limit was reached.</summary>
    public const int Timeout = 6;

    /// <summary>A scenario expectation was not met (the summary lists which).</summary>
    public const int ExpectationFailed = 10;

    /// <summary>The VM hit something the emulator does not handle (an unhandled exit); a bug or a missing feature.</summary>
    public const int InternalError = 8;

    /// <summary>Interrupted by Ctrl-C.</summary>
    public const int Cancelled = 130;
}
