#!/usr/bin/env bash
# compare-builds.sh BEFORE_DOPA AFTER_DOPA [ROUNDS] - the headline benchmark (cue-reward modul, paper
# settings: B=30, H=200, T=120, 2 threads, generated engine) for two builds of dopa in one run,
# alternating the two binaries round by round so that both see the same machine; prints the median
# and minimum of all measured iterations of each and their ratio. Extra `dopa bench` options may
# follow in BENCH_ARGS (e.g. BENCH_ARGS="--threads 1").
set -euo pipefail
before=$1 after=$2 rounds=${3:-6}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
  for which in before after; do
    bin=$before; [ "$which" = after ] && bin=$after
    # shellcheck disable=SC2086
    "$bin" bench cue_reward/modul --engine generated --batch 30 --steps 120 --iters 10 --warmup 2 \
      --threads 2 ${BENCH_ARGS:-} --json "$tmp/$which-$r.json" > /dev/null 2>&1
    printf '.' >&2
  done
done
echo >&2
/usr/bin/python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
res = {}
for which in ("before", "after"):
    times, rss = [], []
    for r in range(1, rounds + 1):
        j = json.load(open(f"{tmp}/{which}-{r}.json"))
        times += j["times_s"]
        rss.append(j["peak_rss_bytes"] / 1e6)
    res[which] = (statistics.median(times), min(times), max(rss), len(times))
for which, (med, mn, rss, n) in res.items():
    print(f"{which:7s} median {med:.4f} s  min {mn:.4f} s  peak RSS {rss:.1f} MB  ({n} iterations)")
print(f"after/before: median {res['after'][0] / res['before'][0]:.3f}, "
      f"min {res['after'][1] / res['before'][1]:.3f}")
PY
