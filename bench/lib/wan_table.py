#!/usr/bin/env python3
"""Prints the WAN grid table from raw results (bench/wan.sh's JSON lines), merging runs: for each
cell and tool the record from the last file that has one wins. Usage:
    python3 bench/lib/wan_table.py old.jsonl new.jsonl
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wan  # noqa: E402  (the same line format and targets as the live table)

TOOLS = ("ours", "ours_repeat", "cubic", "bbr", "scp")


def main():
    cells = {}
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                if d.get("row") != "grid":
                    continue
                s = d["spec"]
                rec = cells.setdefault((s["rate"], s["rtt"], s["loss"]),
                                       {"row": "grid", "spec": s})
                for tool in TOOLS:
                    if tool in d:
                        rec[tool] = d[tool]
    print(wan.GRID_HEADER)
    met = missed = rmet = rmissed = 0
    for key in sorted(cells):
        rec = cells[key]
        if "ours" not in rec:
            continue
        verdict = wan.print_grid_line(rec)
        met += verdict == "met"
        missed += verdict != "met"
        if "ours_repeat" in rec:
            r = wan.verdict_of(rec["ours_repeat"], rec["spec"])
            rmet += r == "met"
            rmissed += r != "met"
    print(f"\nFirst transfers: {met} cells meet every target, {missed} miss at least one.")
    if rmet + rmissed:
        print(f"Repeat transfers: {rmet} cells meet every target, {rmissed} miss at least one.")


if __name__ == "__main__":
    main()
