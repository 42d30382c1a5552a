#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The documentation check, run by `make check`: the manual pages, the config
# examples and the systemd unit must agree with the code they describe.
#
#   1. every page in man/ is clean under `mandoc -T lint -W warning`;
#   2. conf/chainfsd@.service passes `systemd-analyze verify` (when installed);
#   3. chainfs-protocol(7) documents every record, message, wire code, field
#      (name, type and order) of include/chainfs/proto.def and every error
#      code of include/chainfs/errno.def;
#   4. chainfs.conf(5) documents every key of src/daemon/config_keys.def in
#      its section, with its default, and conf/chainfs.conf sets every key;
#   5. chainfsd accepts every conf/*.conf, reports errors as chainfsd(8)
#      says, and its --help options are all in chainfsd(8); likewise chainfs
#      and chainfs(1) once the CLI is built;
#   6. the Python client in chainfs-protocol(7) EXAMPLES, and the chainfs CLI,
#      talk to a live chainfsd, which then exits 0 on SIGTERM.
#
# Run by hand: top_srcdir=.. top_builddir=. tests/docs/check-docs.sh (from a
# build directory). Exit 0: all passed; 1: something failed; 77: skipped.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
top_srcdir=$(cd "$top_srcdir" && pwd)
top_builddir=$(cd "$top_builddir" && pwd)
man=$top_srcdir/man
chainfsd=$top_builddir/chainfsd
chainfs=$top_builddir/chainfs

passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "skip: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/chainfs-docs.XXXXXX") || exit 1
daemon_pid=
cleanup() {
	if [ -n "$daemon_pid" ]; then
		kill -KILL "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# Debian's python3-msgpack lands in /usr/bin/python3's path; a python3 earlier
# in PATH (pyenv, venv) may not have it.
python=
for p in /usr/bin/python3 python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import msgpack' 2>/dev/null; then
		python=$p
		break
	fi
done
pyplain=$(command -v /usr/bin/python3 || command -v python3 || true)

# --------------------------------------------------------------- 1. mandoc lint
pages=$(ls "$man"/*.[1-8] 2>/dev/null)
if ! command -v mandoc >/dev/null 2>&1; then
	skip "mandoc not installed (apt-get install mandoc): man pages not linted"
elif [ -z "$pages" ]; then
	fail "no manual pages in $man"
else
	for p in $pages; do
		if out=$(mandoc -T lint -W warning "$p" 2>&1); then
			ok "mandoc lint $(basename "$p")"
		else
			fail "mandoc lint $(basename "$p")"
			echo "$out"
		fi
	done
fi

# ------------------------------------------------- 2. systemd-analyze verify
unit=$top_srcdir/conf/chainfsd@.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
	skip "systemd-analyze not installed: unit not verified"
elif [ ! -x "$chainfsd" ]; then
	fail "systemd unit: $chainfsd not built"
else
	# Point the unit at the binary just built, so that verify checks it for real.
	mkdir -p "$work/unit"
	sed -e "s|/usr/local/sbin/chainfsd|$chainfsd|g" \
	    -e "s|/usr/local/etc/chainfs/|$top_srcdir/conf/|g" \
	    "$unit" > "$work/unit/chainfsd@.service"
	if out=$(cd "$work/unit" && systemd-analyze verify --man=no ./chainfsd@.service 2>&1); then
		ok "systemd-analyze verify chainfsd@.service"
	else
		fail "systemd-analyze verify chainfsd@.service"
		echo "$out"
	fi
fi
if [ -f "$unit" ]; then
	missing=
	# shellcheck disable=SC2013  # Documentation= holds space-separated words
	for doc in $(sed -n 's/^Documentation=//p' "$unit"); do
		# file:/usr/local/share/man/man8/chainfsd.8 -> man/chainfsd.8 (file:
		# links, since verify runs man(1) for man: ones, and the pages are
		# only installed by make install; conf/local.mk substitutes mandir)
		page=$(echo "$doc" | sed -n 's|^file:/usr/local/share/man/man[0-9]/\(.*\.[0-9]\)$|\1|p')
		if [ -z "$page" ] || [ ! -f "$man/$page" ]; then
			missing="$missing $doc"
		fi
	done
	if [ -z "$missing" ]; then
		ok "unit Documentation= pages exist"
	else
		fail "unit Documentation= names pages not in man/:$missing"
	fi
	if grep -q '^ExecStart=/usr/local/sbin/chainfsd -c /usr/local/etc/chainfs/%i.conf$' "$unit"; then
		ok "unit runs chainfsd -c SYSCONFDIR/chainfs/%i.conf (paths conf/local.mk substitutes)"
	else
		fail "unit ExecStart no longer matches what conf/local.mk substitutes at install"
	fi
else
	fail "missing $unit"
fi

# ------------------------------------------- 3./4. tables against the pages
if [ -z "$pyplain" ]; then
	skip "python3 not installed: protocol and config tables not compared"
else
	if out=$("$pyplain" - "$top_srcdir" <<'PYEOF' 2>&1
import re
import sys

top = sys.argv[1]
errors = []


def strip_c_comments(s):
    return re.sub(r'/\*.*?\*/', '', s, flags=re.S)


def macro_calls(text, name):
    """Yield the top-level argument lists of every NAME(...) call."""
    for m in re.finditer(r'\b%s\(' % name, text):
        i, depth, args, cur = m.end(), 1, [], ''
        while depth:
            c = text[i]
            if c == '(':
                depth += 1
            elif c == ')':
                depth -= 1
                if depth == 0:
                    break
            if c == ',' and depth == 1:
                args.append(cur.strip())
                cur = ''
            else:
                cur += c
            i += 1
        args.append(cur.strip())
        yield args


def fields(spec):
    out = []
    for kind, a, b in re.findall(r'\b([FA])\(\s*(\w+)\s*,\s*(\w+)\s*\)', spec):
        out.append((b, a) if kind == 'F' else (b, 'A(%s)' % a))
    return out


proto = strip_c_comments(open(top + '/include/chainfs/proto.def').read())
page = open(top + '/man/chainfs-protocol.7').read().split('\n')

# Parse the page: ".It Sy NAME [Pq 0xCODE]" opens a record or message,
# ".Sy NAME_resp :" its response, ".It Va field Ta TYPE Ta ..." rows.
doc = {}
codes = {}
cur = None
for line in page:
    m = re.match(r'^\.It Sy (\w+)(?: Pq (0x[0-9a-fA-F]+))?$', line)
    if m:
        cur = m.group(1)
        doc[cur] = []
        if m.group(2):
            codes[cur] = int(m.group(2), 16)
        continue
    m = re.match(r'^\.Sy (\w+_resp) :$', line)
    if m:
        cur = m.group(1)
        doc[cur] = []
        continue
    if line.startswith('.Ss') or line.startswith('.Sh'):
        cur = None
        continue
    m = re.match(r'^\.It Va (\w+) Ta (\S+) Ta', line)
    if m and cur:
        doc[cur].append((m.group(1), m.group(2)))


def compare(name, want):
    if name not in doc:
        errors.append('chainfs-protocol.7: %s is not documented (".It Sy %s")' % (name, name))
    elif doc[name] != want:
        errors.append('chainfs-protocol.7: fields of %s differ:\n  proto.def: %s\n  page:      %s'
                      % (name, ' '.join('%s:%s' % f for f in want),
                         ' '.join('%s:%s' % f for f in doc[name])))


n = 0
for args in macro_calls(proto, 'CFS_STRUCT'):
    compare(args[0], fields(args[1]))
    n += 1
for args in macro_calls(proto, 'CFS_RPC'):
    uc, lc, code, req, resp = args
    compare(lc, fields(req))
    compare(lc + '_resp', fields(resp))
    if codes.get(lc) != int(code, 0):
        errors.append('chainfs-protocol.7: %s should be headed ".It Sy %s Pq %s"' % (lc, lc, code))
    n += 1
if n < 3:
    errors.append('proto.def: parsed only %d rows; the parser needs updating' % n)

# Error codes: ".It \-NUM Ta Er CFS_NAME Ta text"
text = '\n'.join(page)
for name, num, msg in re.findall(r'CFS_ERR\(\s*(\w+)\s*,\s*(\d+)\s*,\s*"([^"]*)"',
                                 open(top + '/include/chainfs/errno.def').read()):
    if not re.search(r'^\.It \\-%s Ta Er CFS_%s Ta ' % (num, name), text, re.M):
        errors.append('chainfs-protocol.7: error CFS_%s (-%s) is not in the error table'
                      % (name, num))

# Config keys: CFS_KEY(section, key, type, field, default, min, max, required);
# CFS_TKEY(key, type, field, default, min, max, required) for [target.ID].
keydef = strip_c_comments(open(top + '/src/daemon/config_keys.def').read())
keys = [(k[0], k[1], k[4], k[7]) for k in macro_calls(keydef, 'CFS_KEY')]
keys += [('target', k[0], k[3], k[6]) for k in macro_calls(keydef, 'CFS_TKEY')]
conf5 = open(top + '/man/chainfs.conf.5').read().split('\n')
items = {}  # (SECTION, key) -> text of its .It item
sec = None
key = None
for line in conf5:
    if line.startswith('.Sh '):
        sec = line[4:].split()[0].upper()
        key = None
        continue
    m = re.match(r'^\.It Cm (\w+)', line)
    if m and sec:
        key = (sec, m.group(1))
        items[key] = ''
        continue
    if key:
        items[key] += ' ' + line


def ini_sections(path):
    """{section: {key: value}} of an INI file, as libinih reads it, and the
    same for keys shown commented out (";key = value") in each section."""
    out, commented, cur = {}, {}, None
    for raw in open(path):
        line = re.sub(r'\s;.*', '', raw).strip()
        m = re.match(r'^[;#]\s*(\w+)\s*=\s*(\S+)', raw.strip())
        if m and cur is not None:
            commented.setdefault(cur, {})[m.group(1)] = m.group(2)
            continue
        if not line or line[0] in ';#':
            continue
        if line.startswith('['):
            cur = line[1:line.index(']')]
            out.setdefault(cur, {})
        elif cur is not None and '=' in line:
            k, v = line.split('=', 1)
            out[cur][k.strip()] = v.strip()
    return out, commented


example, example_off = ini_sections(top + '/conf/chainfs.conf')
if len(keys) < 2:
    errors.append('config_keys.def: parsed only %d keys; the parser needs updating' % len(keys))
for section, name, default, required in keys:
    default, required = default.strip('"'), required == '1'
    item = items.get((section.upper(), name))
    if item is None:
        errors.append('chainfs.conf.5: [%s] %s is not documented (".It Cm %s" under ".Sh %s ...")'
                      % (section, name, name, section.upper()))
        continue
    if required and 'Required.' not in item:
        errors.append('chainfs.conf.5: [%s] %s: does not say "Required."' % (section, name))
    if default and not re.search(r'Default:\s*(\.Cm\s+)?%s\b' % re.escape(default), item):
        errors.append('chainfs.conf.5: [%s] %s: default %s not stated' % (section, name, default))
    # The example sets every key, at its default where it has one; an
    # optional key without a default may be shown commented out instead.
    def in_section(k):
        return k == section or (section == 'target' and k.startswith('target.'))
    vals = [v[name] for k, v in example.items() if in_section(k) and name in v]
    off = [v[name] for k, v in example_off.items() if in_section(k) and name in v]
    if not vals and off and not required and not default:
        pass
    elif not vals:
        errors.append('conf/chainfs.conf: [%s] %s is missing from the example%s'
                      % (section, name, '' if required or default else
                         ' (an optional key may be shown as ";%s = ...")' % name))
    elif default and vals[0] != default:
        errors.append('conf/chainfs.conf: [%s] %s = %s, but its default is %s'
                      % (section, name, vals[0], default))

for e in errors:
    print(e)
print('%d protocol rows, %d config keys compared' % (n, len(keys)))
sys.exit(1 if errors else 0)
PYEOF
	); then
		ok "proto.def, errno.def, config_keys.def match the pages ($out)"
	else
		fail "tables and pages disagree"
		echo "$out"
	fi
fi

# --------------------------------------------------------------- 5. chainfsd
if [ ! -x "$chainfsd" ]; then
	fail "$chainfsd not built: cannot check configs, options or the live examples"
	echo "check-docs: $passed passed, $failed failed, $skipped skipped"
	exit 1
fi

for c in "$top_srcdir"/conf/*.conf; do
	if out=$("$chainfsd" --check-config -c "$c" 2>&1) && [ "$out" = "$c: ok" ]; then
		ok "chainfsd --check-config accepts conf/$(basename "$c")"
	else
		fail "chainfsd --check-config -c conf/$(basename "$c")"
		echo "$out"
	fi
done

# The error example of chainfsd(8) -t, reproduced: line 12 has a bad loops,
# line 14 an unknown key, and [node] id is missing.
{
	printf '; chainfsd(8) --check-config example\n'
	printf ';\n%.0s' 2 3 4 5 6 7 8 9 10
	printf '[node]\nloops = many\n[net]\nmax_frame = 1M\n'
} > "$work/node1.conf"
want="node1.conf:12: [node] loops: expected 'auto' or 1..64, got 'many'
node1.conf:14: [net] unknown key 'max_frame'
node1.conf: [node] id: required key missing
node1.conf: [node] listen: required key missing"
got=$(cd "$work" && "$chainfsd" --check-config -c node1.conf 2>&1)
rc=$?
if [ $rc -eq 1 ] && [ "$got" = "$want" ]; then
	ok "chainfsd --check-config reports errors as chainfsd(8) shows"
else
	fail "chainfsd --check-config on a bad file: exit $rc (want 1), output:"
	echo "$got"
	echo "--- expected:"
	echo "$want"
fi
for line in "node1.conf:12: [node] loops: expected 'auto' or 1..64, got 'many'" \
	    "node1.conf:14: [net] unknown key 'max_frame'" \
	    "node1.conf: [node] id: required key missing"; do
	if ! grep -qF "$line" "$man/chainfsd.8"; then
		fail "chainfsd.8 no longer shows the error line: $line"
	fi
done

"$chainfsd" >/dev/null 2>&1
rc=$?
if [ $rc -eq 2 ]; then ok "chainfsd without -c exits 2"; else fail "chainfsd without -c exits $rc, chainfsd(8) says 2"; fi
if out=$("$chainfsd" --version) && echo "$out" | grep -q '^chainfsd [0-9]'; then
	ok "chainfsd --version: $out"
else
	fail "chainfsd --version printed '$out'"
fi

# Every long option in a program's --help appears in its page as "Fl \-name".
check_options() { # program page
	local prog=$1 pg=$2 help opt missing=
	help=$("$prog" --help 2>&1) || { fail "$(basename "$prog") --help exits non-zero"; return; }
	for opt in $(echo "$help" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		grep -qF -- "Fl \\${opt#-}" "$pg" || missing="$missing $opt"
	done
	if [ -z "$missing" ]; then
		ok "every option of $(basename "$prog") --help is in $(basename "$pg")"
	else
		fail "$(basename "$pg") does not document:$missing"
	fi
}
check_options "$chainfsd" "$man/chainfsd.8"
# Every subcommand in chainfs --help ("  admin status|targets ADDR ...")
# appears in chainfs(1) as ".Cm admin status" (or ".Cm admin status | targets"
# in the synopsis, ".It Cm chunk put Ar ...").
check_commands() { # program page
	local prog=$1 pg=$2 line cmd subs sub missing=
	while read -r line; do
		cmd=${line%% *}
		subs=$(echo "$line" | awk '{ print $2 }')
		case $subs in
		[a-z]*) ;;
		*) subs= ;;
		esac
		if [ -z "$subs" ]; then
			grep -q "Cm $cmd\b" "$pg" || missing="$missing $cmd"
			continue
		fi
		for sub in $(echo "$subs" | tr '|' ' '); do
			grep -q "Cm $cmd $sub\b" "$pg" || missing="$missing '$cmd $sub'"
		done
	done < <("$prog" --help 2>&1 | sed -n '/^commands:/,/^$/p' | sed -n 's/^  \([a-z]\)/\1/p')
	if [ -z "$missing" ]; then
		ok "every command of $(basename "$prog") --help is in $(basename "$pg")"
	else
		fail "$(basename "$pg") does not document the commands:$missing"
	fi
}
if [ -x "$chainfs" ]; then
	check_options "$chainfs" "$man/chainfs.1"
	check_commands "$chainfs" "$man/chainfs.1"
else
	skip "chainfs CLI not built: chainfs(1) not compared with it"
fi

# ------------------------------------------------ 6. examples against a live node
cat > "$work/live.conf" <<EOF
[node]
id = 7
listen = 127.0.0.1:0
loops = 2
pin = no
EOF
"$chainfsd" -c "$work/live.conf" 2> "$work/chainfsd.log" &
daemon_pid=$!
port=
for _ in $(seq 1 200); do
	port=$(sed -n 's/.* port=\([0-9][0-9]*\).*serving.*/\1/p' "$work/chainfsd.log" | head -n 1)
	[ -n "$port" ] && break
	kill -0 "$daemon_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$port" ]; then
	fail "chainfsd did not report its port (looked for 'port=N ... serving'); log:"
	cat "$work/chainfsd.log"
else
	ok "chainfsd serving on 127.0.0.1:$port"
	addr=127.0.0.1:$port

	# The Python client, cut out of the page exactly as a reader would copy it.
	sed -n '/^\.\\" example-begin$/,/^\.\\" example-end$/p' "$man/chainfs-protocol.7" |
		sed -e '1,2d' -e '$d' | sed -e '$d' -e 's/^\\&//' -e 's/\\e/\\/g' > "$work/chainfs_status.py"
	if [ ! -s "$work/chainfs_status.py" ]; then
		fail "chainfs-protocol.7: no example between example-begin and example-end"
	elif [ -z "$python" ]; then
		skip "python3-msgpack not installed: Python example not run"
	elif out=$(timeout 30 "$python" "$work/chainfs_status.py" "$addr" 2>&1) &&
		echo "$out" | grep -q '^ping: node 7 answered in [0-9]* us$' &&
		echo "$out" | grep -q '^node 7  version ' &&
		echo "$out" | grep -q '^  loop 1 ' &&
		echo "$out" | grep -q '^  actor nodectl    0000000700000001  loop 0'; then
		ok "chainfs-protocol(7) Python example talks to chainfsd"
	else
		fail "chainfs-protocol(7) Python example; output:"
		echo "$out"
	fi

	if [ -x "$chainfs" ]; then
		if out=$(timeout 30 "$chainfs" ping "$addr" -c 2 -i 10 2>&1); then
			ok "chainfs ping $addr -c 2 -i 10"
		else
			fail "chainfs ping $addr -c 2 -i 10; output:"
			echo "$out"
		fi
		if out=$(timeout 30 "$chainfs" admin status "$addr" 2>&1) &&
			echo "$out" | grep -q nodectl; then
			ok "chainfs admin status $addr lists nodectl"
		else
			fail "chainfs admin status $addr; output:"
			echo "$out"
		fi
	fi
fi

if kill -0 "$daemon_pid" 2>/dev/null; then
	kill -TERM "$daemon_pid"
	for _ in $(seq 1 200); do
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$daemon_pid" 2>/dev/null; then
		fail "chainfsd still running 20 s after SIGTERM"
	else
		wait "$daemon_pid"
		rc=$?
		daemon_pid=
		if [ $rc -eq 0 ]; then
			ok "chainfsd exits 0 on SIGTERM"
		else
			fail "chainfsd exited $rc on SIGTERM; chainfsd(8) says 0; log:"
			cat "$work/chainfsd.log"
		fi
	fi
else
	wait "$daemon_pid"
	fail "chainfsd died (exit $?); log:"
	daemon_pid=
	cat "$work/chainfsd.log"
fi

echo "check-docs: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
