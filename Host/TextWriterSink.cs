using System.Globalization;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Display;

namespace ActorVm.Host;

/// <summary>Log events to a caller's stderr writer (tests pass a StringWriter), one line each.</summary>
public sealed class TextWriterSink(TextWriter writer) : ILogEventSink
{
    private readonly MessageTemplateTextFormatter _format = new("[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}", CultureInfo.InvariantCulture);

    public void Emit(LogEvent logEvent)
    {
        lock (writer)
        {
            _format.Format(logEvent, writer);
        }
    }
}
