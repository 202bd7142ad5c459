// The host configures Serilog's static logger per run (as a process does once), so runs in one
// test process must not overlap: each would log into the other's stderr.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
