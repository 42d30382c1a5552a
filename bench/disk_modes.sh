#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The measurements behind the chunk engine's design choices (src/disk/README.md):
#   1. durability: fdatasync per group commit vs RWF_DSYNC writes, batch 1..64
#   2. data file preparation: fallocate only vs zero-filled extents (4 KiB, 64 KiB)
#   3. open time of a target holding N chunks (default one million)
# Cases alternate and repeat ROUNDS times; medians are printed.
#
#   bench/disk_modes.sh BENCH_BINARY [BASE_DIR [ROUNDS [OPEN_CHUNKS]]]
set -eu

bench=${1:?usage: disk_modes.sh BENCH_BINARY [BASE_DIR [ROUNDS [OPEN_CHUNKS]]]}
base=${2:-/var/tmp}
rounds=${3:-3}
nopen=${4:-1000000}
dir=$(mktemp -d "$base/cfs-disk-modes.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

echo "# 1. durable writes: fdatasync per group commit vs RWF_DSYNC (qd = batch), writes/s"
printf '%-6s %-6s %12s %12s %10s\n' size batch fdatasync dsync per_commit
for bs in 4k 1M; do
	if [ "$bs" = 4k ]; then nch=4096; else nch=256; fi
	for mode in fdatasync dsync; do
		# two passes so every slot the measured runs use was written before
		"$bench" write --dir "$dir/$bs-$mode" --bs $bs --chunk $bs --qd 64 --count $((nch * 2)) \
			--chunks $nch --sync $mode >/dev/null 2>&1
	done
	for b in 1 4 16 64; do
		count=$((b * 40))
		[ "$count" -lt 200 ] && count=200
		[ "$bs" = 1M ] && [ "$count" -gt 1024 ] && count=1024
		: >"$dir/f"; : >"$dir/d"; : >"$dir/p"
		for r in $(seq "$rounds"); do
			out=$("$bench" write --dir "$dir/$bs-fdatasync" --bs $bs --chunk $bs --qd $b \
				--count $count --chunks $nch --sync fdatasync 2>/dev/null)
			echo "$out" | field iops >>"$dir/f"
			echo "$out" | field per_commit >>"$dir/p"
			"$bench" write --dir "$dir/$bs-dsync" --bs $bs --chunk $bs --qd $b \
				--count $count --chunks $nch --sync dsync 2>/dev/null | field iops >>"$dir/d"
		done
		printf '%-6s %-6s %12s %12s %10s\n' $bs $b "$(median <"$dir/f")" "$(median <"$dir/d")" \
			"$(median <"$dir/p")"
	done
done

echo "# 2. first writes into new slots: fallocate only vs zero-filled extents, writes/s (qd 16)"
printf '%-6s %12s %12s\n' size fallocate zero
for bs in 4k 64k; do
	: >"$dir/a"; : >"$dir/z"
	for r in $(seq "$rounds"); do
		for prep in fallocate zero; do
			rm -rf "$dir/prep"
			out=$("$bench" write --dir "$dir/prep" --bs $bs --chunk $bs --qd 16 --count 8192 \
				--prep $prep 2>/dev/null)
			if [ $prep = zero ]; then echo "$out" | field iops >>"$dir/z"; else
				echo "$out" | field iops >>"$dir/a"; fi
		done
	done
	printf '%-6s %12s %12s\n' $bs "$(median <"$dir/a")" "$(median <"$dir/z")"
done
rm -rf "$dir/prep"

echo "# 3. open time with $nopen chunks (index rows written directly)"
"$bench" populate --dir "$dir/open" --count "$nopen" 2>/dev/null
: >"$dir/o"
for r in $(seq "$rounds"); do
	"$bench" open --dir "$dir/open" 2>/dev/null | tee -a "$dir/o.full" | field open_secs >>"$dir/o"
done
tail -1 "$dir/o.full"
echo "open_secs median: $(median <"$dir/o") (open_cpu_secs: CPU time, less sensitive to a busy machine)"
