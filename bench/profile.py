#!/usr/bin/env python3
"""The wall-time profile (WARDEN_PROFILE=FILE) as a table.

    bench/profile.py FILE [--csv OUT]

FILE holds lines "NS B|E PATH" (orchestrator/src/profile.rs): NS a
CLOCK_REALTIME time in nanoseconds, PATH a step's place in the tree
("/create/create.sh/setup.sh/upper layer"). A step begins at its B; it ends at its E
when there is one, else when the next step of the same parent begins, else
when its parent ends (scripts only mark where each step begins).

Printed: every step with its wall time in ms and its share of its root
(create, run, destroy), indented by depth; under each step with sub-steps,
"(between steps)" is the part of it no sub-step covers (a process starting,
a shell reading its script). CSV (--csv): path,begin_ms,ms,between_ms, one
row per step (begin relative to the first event).
"""
import sys


def parent_of(path):
    return path.rsplit("/", 1)[0]


def load(lines):
    events = []
    for n, line in enumerate(lines):
        parts = line.rstrip("\n").split(" ", 2)
        if len(parts) != 3 or parts[1] not in ("B", "E") or not parts[0].isdigit():
            continue
        events.append((int(parts[0]), n, parts[1], parts[2]))
    events.sort()
    begin, end, order = {}, {}, []
    seen = {}
    for ns, _, kind, path in events:
        if kind == "B":
            # A step begun twice in one profile (a retry) is shown twice.
            count = seen.get(path, 0) + 1
            seen[path] = count
            key = path if count == 1 else f"{path} #{count}"
            begin[key] = ns
            order.append(key)
        else:
            count = seen.get(path, 0)
            key = path if count <= 1 else f"{path} #{count}"
            if key in begin:
                end[key] = ns
    # Ancestors nobody marked (a scope whose caller is not profiled).
    last_under = {}
    for ns, _, _, path in events:
        p = path
        while p:
            last_under[p] = max(last_under.get(p, 0), ns)
            p = parent_of(p)
    for key in list(order):
        p = parent_of(key)
        while p and p not in begin:
            begin[p] = begin[key]
            end[p] = last_under.get(p, begin[key])
            order.append(p)
            p = parent_of(p)
    for p in order:
        q = parent_of(p)
        if q in begin and begin[q] > begin[p]:
            begin[q] = begin[p]
    order.sort(key=lambda k: (begin[k], k.count("/")))
    children = {}
    for key in order:
        children.setdefault(parent_of(key), []).append(key)

    def end_of(key):
        if key not in end:
            parent = parent_of(key)
            siblings = children.get(parent, [])
            later = [begin[s] for s in siblings if begin[s] > begin[key]]
            limit = end_of(parent) if parent in begin else last_under.get(key, begin[key])
            end[key] = min(later + [limit])
        return end[key]

    for key in order:
        end_of(key)
    return order, begin, end, children


def main():
    args = sys.argv[1:]
    csv_out = None
    if "--csv" in args:
        i = args.index("--csv")
        csv_out = args[i + 1]
        del args[i : i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    with open(args[0]) as f:
        order, begin, end, children = load(f)
    if not order:
        sys.exit(f"profile.py: no events in {args[0]}")
    t0 = min(begin.values())
    ms = lambda ns: ns / 1e6
    rows = []

    def walk(key, depth, root_ms):
        dur = ms(end[key] - begin[key])
        kids = children.get(key, [])
        covered = sum(ms(end[k] - begin[k]) for k in kids)
        between = dur - covered if kids else 0.0
        name = key.rsplit("/", 1)[1]
        share = 100.0 * dur / root_ms if root_ms else 100.0
        print(f"{dur:9.1f} {share:6.1f}%  {'  ' * depth}{name}")
        rows.append((key, ms(begin[key] - t0), dur, between))
        for k in kids:
            walk(k, depth + 1, root_ms)
        if kids:
            share = 100.0 * between / root_ms if root_ms else 0.0
            print(f"{between:9.1f} {share:6.1f}%  {'  ' * (depth + 1)}(between steps)")

    print(f"{'ms':>9} {'share':>7}  step")
    for root in children.get("", []):
        walk(root, 0, ms(end[root] - begin[root]))
    if csv_out:
        with open(csv_out, "w") as f:
            f.write("path,begin_ms,ms,between_ms\n")
            for key, b, d, between in rows:
                f.write(f'"{key}",{b:.3f},{d:.3f},{between:.3f}\n')


if __name__ == "__main__":
    main()
