#!/usr/bin/python3
"""Draws an ActorVm --trace-json file as a PNG timeline: the tracks, guest slices, exits and
IPI/timer flow arrows that Perfetto shows (Perfetto's UI needs the network; this does not).

    /usr/bin/python3 docs/render_trace.py ring.json docs/trace-ipi-ring.png [--flows 24]

Needs python3-matplotlib (Debian). The window starts at the first IPI flow after all vCPUs have
run and spans --flows IPI deliveries, so the token's path round the ring stays readable.
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("png")
    p.add_argument("--flows", type=int, default=24)
    args = p.parse_args()

    doc = json.load(open(args.trace))
    events = doc["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    tracks = sorted(names)
    outs = {e["bind_id"]: e for e in events if e.get("flow_out")}
    ins = sorted((e for e in events if e.get("flow_in") and e.get("cat") == "ipi"), key=lambda e: e["ts"])
    if not ins:
        raise SystemExit("no IPI flows in the trace")
    start_ix = min(len(ins) - 1, len(ins) // 3)
    window = ins[start_ix:start_ix + args.flows]
    t0 = outs[window[0]["bind_id"]]["ts"] - 20
    t1 = window[-1]["ts"] + 20

    def y(tid):
        return len(tracks) - 1 - tracks.index(tid)

    fig, ax = plt.subplots(figsize=(14, 1.1 * len(tracks) + 1.6), dpi=110)
    for e in events:
        if e["ph"] == "X" and e.get("cat") == "guest" and e["ts"] + e["dur"] >= t0 and e["ts"] <= t1:
            ax.barh(y(e["tid"]), e["dur"], left=e["ts"], height=0.5, color="#7bc47f", edgecolor="#3d8b41", linewidth=0.4)
    for e in events:
        if e["ph"] == "i" and e.get("cat", "").startswith("exit") and t0 <= e["ts"] <= t1:
            fast = e["cat"].endswith("fastpath")
            ax.plot(e["ts"], y(e["tid"]) + 0.33, marker="v", markersize=5, color="#2a7de1" if fast else "#d9412b")
        if e["ph"] == "i" and e.get("cat") == "block" and t0 <= e["ts"] <= t1 and e["name"] == "halted":
            ax.plot(e["ts"], y(e["tid"]), marker="|", markersize=14, color="#888888")
    for i in window:
        o = outs[i["bind_id"]]
        ax.add_patch(FancyArrowPatch((o["ts"], y(o["tid"])), (i["ts"], y(i["tid"])), arrowstyle="-|>", mutation_scale=10,
                                     color="#8a3ffc", linewidth=1.0, alpha=0.85))
    ax.set_yticks([y(t) for t in tracks])
    ax.set_yticklabels([names[t] for t in tracks])
    ax.set_xlim(t0, t1)
    ax.set_ylim(-0.7, len(tracks) - 0.3)
    ax.set_xlabel("time (µs since the VM started)")
    title = doc.get("otherData", {}).get("scenario", "")
    ax.set_title(f"ActorVm {title}: guest slices (green), exits (▼ blue fastpath / red slowpath), halts (|), IPIs (purple arrows)")
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    fig.tight_layout()
    fig.savefig(args.png)


if __name__ == "__main__":
    main()
