#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The chunk engine against fio on the same directory, same block size, same
# queue depth. The disk here is shared and noisy, so each case runs engine and
# fio alternately, ROUNDS times each, and compares medians.
#
#   bench/disk_compare.sh BENCH_BINARY [BASE_DIR [ROUNDS [SIZE_MB]]]
#
# Prints one table row per case and a last line
#   ratio: write_1m=... read_1m=... randread_4k=... randread_64k=...
# (engine median / fio median). Needs fio.
set -eu

bench=${1:?usage: disk_compare.sh BENCH_BINARY [BASE_DIR [ROUNDS [SIZE_MB]]]}
base=${2:-/var/tmp}
rounds=${3:-3}
size_mb=${4:-1024}
dir=$(mktemp -d "$base/cfs-disk-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
fiofile=$dir/fio.dat
tgt=$dir/target

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
# fio terse v3: read bw KiB/s $7, read iops $8, write bw $48, write iops $49
fio_run() { fio --name=c --filename="$fiofile" --size="${size_mb}M" --direct=1 --ioengine=libaio \
	--output-format=terse --terse-version=3 "$@"; }

echo "# chunk engine vs fio: $dir, ${size_mb} MiB, $rounds rounds, medians"
fio_run --rw=write --bs=1M --iodepth=16 >/dev/null # lay out fio's file: overwrites from now on
"$bench" write --dir "$tgt" --bs 1M --chunk 1M --qd 16 --count "$size_mb" >/dev/null 2>&1

# -- durable sequential writes, 1 MiB, qd 16 ---------------------------------
: >"$dir/w.e"; : >"$dir/w.f"; : >"$dir/w.n"; : >"$dir/w.b"
for r in $(seq "$rounds"); do
	out=$("$bench" write --dir "$tgt" --bs 1M --chunk 1M --qd 16 --count "$size_mb" 2>/dev/null)
	echo "$out" | field mbps >>"$dir/w.e"
	echo "$out" | field per_commit >>"$dir/w.b"
	b=$(echo "$out" | field per_commit | awk '{v = int($1 + 0.5); print v < 1 ? 1 : v}')
	fio_run --rw=write --bs=1M --iodepth=16 --fdatasync="$b" |
		awk -F';' '{print $48 / 1024}' >>"$dir/w.f"
	fio_run --rw=write --bs=1M --iodepth=16 | awk -F';' '{print $48 / 1024}' >>"$dir/w.n"
done
we=$(median <"$dir/w.e"); wf=$(median <"$dir/w.f"); wn=$(median <"$dir/w.n"); wb=$(median <"$dir/w.b")
printf '%-34s engine %8.1f MB/s  fio %8.1f MB/s (fdatasync every %s)  fio no sync %8.1f\n' \
	"write 1MiB qd16 durable" "$we" "$wf" "$wb" "$wn"

# -- reads ----------------------------------------------------------------------
read_case() { # name bs qd batch random(0/1) count fio_rw
	: >"$dir/r.e"; : >"$dir/r.f"
	rnd=""
	[ "$5" = 1 ] && rnd=--random
	for r in $(seq "$rounds"); do
		"$bench" read --dir "$tgt" --bs "$2" --qd "$3" --batch "$4" --count "$6" \
			--chunks "$size_mb" $rnd --seed "$r" 2>/dev/null | field iops >>"$dir/r.e"
		fio_run --rw="$7" --bs="$2" --iodepth="$3" --runtime=4 --time_based |
			awk -F';' '{print $8}' >>"$dir/r.f"
	done
	re=$(median <"$dir/r.e"); rf=$(median <"$dir/r.f")
	printf '%-34s engine %8.0f IOPS  fio %8.0f IOPS\n' "$1" "$re" "$rf"
	echo "$re $rf" | awk '{printf "%.2f", ($2 > 0 ? $1 / $2 : 0)}' >"$dir/ratio.$1"
}
read_case "read_1m" 1M 16 1 0 $((size_mb * 3)) read
read_case "randread_4k" 4k 32 8 1 100000 randread
read_case "randread_64k" 64k 32 8 1 30000 randread

printf 'ratio: write_1m=%s read_1m=%s randread_4k=%s randread_64k=%s\n' \
	"$(echo "$we $wf" | awk '{printf "%.2f", ($2 > 0 ? $1 / $2 : 0)}')" \
	"$(cat "$dir/ratio.read_1m")" "$(cat "$dir/ratio.randread_4k")" \
	"$(cat "$dir/ratio.randread_64k")"
