#!/usr/bin/env python3
"""Latency versus throughput of the open-loop sweep: one panel per scenario, p50 / p99 / p99.9 of its primary
operation against the rate answered, drawn by gnuplot into RESULTS/latency-sweep.png.

Usage: loadtests/sweep-chart.py RESULTS_DIR   (reads the sweep-*.json files that loadtests/run.sh writes)
"""
import glob
import json
import os
import subprocess
import sys


def main() -> int:
    results = sys.argv[1]
    points: dict[str, list[tuple[float, float, float, float, int]]] = {}
    for path in sorted(glob.glob(os.path.join(results, "sweep-*.json"))):
        with open(path) as handle:
            run = json.load(handle)
        operation = run["operations"].get(run.get("primaryOperation") or "", None)
        if operation is None:
            operation = max(run["operations"].values(), key=lambda o: o["p99Ms"])
        share = int(run["label"].rsplit("@", 1)[1].rstrip("%"))
        points.setdefault(run["scenario"], []).append(
            (operation["throughputPerS"], operation["p50Ms"], operation["p99Ms"], operation["p999Ms"], share))
    if not points:
        print("no sweep results in " + results, file=sys.stderr)
        return 1
    script = [
        "set terminal pngcairo size {},{} font ',10'".format(480 * len(points), 420),
        "set output '{}'".format(os.path.join(results, "latency-sweep.png")),
        "set multiplot layout 1,{} title 'Open-loop latency at 25/50/75/90 % of the closed-loop maximum'".format(len(points)),
        "set logscale y", "set grid", "set key top left", "set xlabel 'answered per second'", "set ylabel 'latency, ms'",
    ]
    for scenario, rows in sorted(points.items()):
        rows.sort()
        data = os.path.join(results, "sweep-{}.dat".format(scenario))
        with open(data, "w") as handle:
            handle.write("# answered_per_s p50_ms p99_ms p999_ms share_pct\n")
            for row in rows:
                handle.write("{:.1f} {:.3f} {:.3f} {:.3f} {}\n".format(*row))
        script += [
            "set title '{}'".format(scenario),
            "plot '{0}' using 1:2 with linespoints title 'p50', '{0}' using 1:3 with linespoints title 'p99', "
            "'{0}' using 1:4 with linespoints title 'p99.9', '{0}' using 1:3:(sprintf('%d%%', $5)) with labels offset 0,1 notitle".format(data),
        ]
    script.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True, timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
