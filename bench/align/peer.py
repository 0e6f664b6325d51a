"""Peer for bench/align/run.ts: the same problems solved the way a Python Git Re-Basin user would.

Reads the problems run.ts wrote into a directory (raw little-endian float32/float64 files plus
problems.json), times them, and prints one JSON object on stdout.

- Linear assignment: scipy.optimize.linear_sum_assignment when scipy is importable; otherwise a
  numpy port of the same algorithm (Crouse's shortest augmenting path, what scipy runs in C++),
  vectorised over columns. The report says which one ran.
- Weight matching: the reference algorithm of Ainsworth et al. (git-re-basin, weight_matching.py)
  in numpy: each step recomputes the score matrix with BLAS (float32 matmul into float64) and
  solves it with the assignment solver above.

Run with /usr/bin/python3 (numpy); BLAS threads are pinned to 1 by run.ts for a like-for-like
comparison with the single-threaded TypeScript.
"""
import json
import resource
import sys
import time

import numpy as np

try:
    from scipy.optimize import linear_sum_assignment as _scipy_lsa

    SOLVER = "scipy.optimize.linear_sum_assignment"

    def maximize(scores):
        return _scipy_lsa(scores, maximize=True)[1]

except ImportError:
    SOLVER = "numpy port of scipy's LSAP (scipy not installed)"

    def maximize(scores):
        """Crouse's shortest augmenting path on cost = -scores; returns column of each row."""
        cost = -np.asarray(scores, dtype=np.float64)
        n = cost.shape[0]
        u = np.zeros(n)
        v = np.zeros(n)
        col4row = np.full(n, -1)
        row4col = np.full(n, -1)
        for current in range(n):
            distance = np.full(n, np.inf)
            path = np.full(n, -1)
            rows_seen = np.zeros(n, dtype=bool)
            cols_seen = np.zeros(n, dtype=bool)
            remaining = np.ones(n, dtype=bool)
            reached = 0.0
            row = current
            sink = -1
            while sink == -1:
                rows_seen[row] = True
                reduced = reached + cost[row] - u[row] - v
                better = remaining & (reduced < distance)
                distance[better] = reduced[better]
                path[better] = row
                candidates = np.where(remaining, distance, np.inf)
                lowest = candidates.min()
                ties = np.flatnonzero(candidates == lowest)
                free = ties[row4col[ties] == -1]
                j = free[0] if free.size else ties[0]
                reached = lowest
                cols_seen[j] = True
                remaining[j] = False
                if row4col[j] == -1:
                    sink = j
                else:
                    row = row4col[j]
            u[current] += reached
            others = rows_seen.copy()
            others[current] = False
            u[others] += reached - distance[col4row[others]]
            v[cols_seen] -= reached - distance[cols_seen]
            j = sink
            while True:
                i = path[j]
                row4col[j] = i
                col4row[i], j = j, col4row[i]
                if i == current:
                    break
        return col4row


def load(directory, entry):
    dtype = np.float32 if entry["dtype"] == "f32" else np.float64
    return np.fromfile(f"{directory}/{entry['file']}", dtype=dtype).reshape(entry["shape"])


def permuted(params, axes_of, perms, name, except_axis):
    w = params[name]
    for axis, p in axes_of[name]:
        if axis != except_axis:
            w = np.take(w, perms[p], axis=axis)
    return w


def weight_matching(spec, a, b, seed, max_iter=100):
    """git-re-basin's weight_matching, with numpy in place of jax."""
    axes_of = {}
    for p, refs in spec.items():
        for ref in refs:
            axes_of.setdefault(ref["tensor"], []).append((ref["axis"], p))
    sizes = {p: a[refs[0]["tensor"]].shape[refs[0]["axis"]] for p, refs in spec.items()}
    perms = {p: np.arange(n) for p, n in sizes.items()}
    names = list(spec)
    rng = np.random.default_rng(seed)
    score_time = 0.0
    solve_time = 0.0
    sweeps = 0
    for _ in range(max_iter):
        sweeps += 1
        progress = False
        for index in rng.permutation(len(names)):
            p = names[index]
            n = sizes[p]
            started = time.perf_counter()
            scores = np.zeros((n, n))
            for ref in spec[p]:
                w_a = np.moveaxis(a[ref["tensor"]], ref["axis"], 0).reshape((n, -1))
                w_b = np.moveaxis(permuted(b, axes_of, perms, ref["tensor"], ref["axis"]), ref["axis"], 0).reshape((n, -1))
                scores += w_a @ w_b.T
            score_time += time.perf_counter() - started
            started = time.perf_counter()
            columns = maximize(scores)
            solve_time += time.perf_counter() - started
            old = scores[np.arange(n), perms[p]].sum()
            new = scores[np.arange(n), columns].sum()
            progress = progress or new > old + 1e-12
            perms[p] = np.asarray(columns)
        if not progress:
            break
    objective = sum(float(np.vdot(a[t].astype(np.float64), permuted(b, axes_of, perms, t, -1).astype(np.float64))) for t in axes_of)
    return {"sweeps": sweeps, "score_s": score_time, "solve_s": solve_time, "objective": objective}


def main():
    directory = sys.argv[1]
    with open(f"{directory}/problems.json") as f:
        problems = json.load(f)
    out = {"solver": SOLVER, "numpy": np.__version__, "lap": [], "weight_matching": []}
    for problem in problems["lap"]:
        scores = load(directory, problem["scores"])
        times = []
        for _ in range(problem["repeats"]):
            started = time.perf_counter()
            columns = maximize(scores)
            times.append(time.perf_counter() - started)
        total = float(scores[np.arange(scores.shape[0]), columns].sum())
        out["lap"].append({"name": problem["name"], "seconds": sorted(times)[len(times) // 2], "score": total})
    for problem in problems["weight_matching"]:
        a = {k: load(directory, e) for k, e in problem["a"].items()}
        b = {k: load(directory, e) for k, e in problem["b"].items()}
        started = time.perf_counter()
        result = weight_matching(problem["spec"], a, b, seed=0)
        result["seconds"] = time.perf_counter() - started
        result["name"] = problem["name"]
        out["weight_matching"].append(result)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
