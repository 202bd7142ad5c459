namespace ActorVm.Host;

public static class Program
{
    public static int Main(string[] args) => HostApp.RunConsole(args);
}
