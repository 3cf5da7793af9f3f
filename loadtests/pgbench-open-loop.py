#!/usr/bin/env python3
"""The raw database's latency at a given arrival rate: summarises a `pgbench -R RATE --log` run (TPC-B-like) as a
result file shaped like `loyalty-loadtest run --json`, so the report's sweep table and chart put it next to the
server's commits at the same offered rate.

pgbench -R schedules transactions at a fixed rate (Poisson arrivals); each log line carries the transaction's
time and its schedule lag in microseconds, and their sum is the latency from when the transaction was due, the same
definition the load generator's open loop uses.

Usage: loadtests/pgbench-open-loop.py LOG_PREFIX LABEL RATE_PER_S DURATION_S OUT_JSON
"""
import glob
import json
import sys


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, int(round(share * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


def main() -> int:
    prefix, label, rate, duration, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    latencies_ms: list[float] = []
    skipped = 0
    for path in glob.glob(prefix + ".*"):
        with open(path) as handle:
            for line in handle:
                fields = line.split()
                # client, transaction, time_us, script, epoch_s, epoch_us, schedule_lag_us; "skipped" when late.
                if len(fields) < 7 or fields[2] == "skipped":
                    skipped += 1
                    continue
                latencies_ms.append((int(fields[2]) + int(fields[6])) / 1000.0)
    if not latencies_ms:
        print("no transactions in " + prefix + ".*", file=sys.stderr)
        return 1
    latencies_ms.sort()
    count = len(latencies_ms)
    operation = {
        "count": count, "throughputPerS": count / duration,
        "p50Ms": percentile(latencies_ms, 0.50), "p90Ms": percentile(latencies_ms, 0.90),
        "p99Ms": percentile(latencies_ms, 0.99), "p999Ms": percentile(latencies_ms, 0.999), "maxMs": latencies_ms[-1],
    }
    result = {
        "label": label, "scenario": label.rsplit("@", 1)[0], "mode": "open {}/s".format(rate),
        "connections": 0, "pipeline": 1, "durationS": duration, "requests": count, "requestsPerS": count / duration,
        "operations": {"transaction": operation}, "errors": {"skipped": skipped} if skipped else {},
        "primaryOperation": "transaction",
    }
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)
    print("{}: {} transactions, p50 {:.2f} ms, p99 {:.2f} ms, p99.9 {:.2f} ms".format(
        label, count, operation["p50Ms"], operation["p99Ms"], operation["p999Ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
