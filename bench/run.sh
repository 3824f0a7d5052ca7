#!/usr/bin/env bash
# Measures instagift against this machine's own limits, in one run:
#
#   * the real server (release build, --rate-limits false, access log to a
#     file) on a seeded database: requests/s, p50 and p99 at 1, 8 and 32
#     connections for
#       GET  /v2/certificates/{id}               merchant, expanded view
#       GET  /v2/claim_codes/{code}              merchant
#       POST /v2/claim_codes/{code}/redemptions  a distinct certificate each
#   * its limits: a bare tiny_http server (examples/bare_http.rs) at the same
#     connection counts, and bare SQLite durable single-row commits on the
#     same disk (examples/sqlite_commit.rs);
#   * each figure as a ratio to its limit;
#   * release binary size, idle RSS, peak RSS under load, and the time from
#     process start to the first 200 on an empty database.
#
# Usage: bench/run.sh [--big] [--check]
#   --big    also seed 1,000,000 certificates, repeat the server figures and
#            print each one's ratio big/small
#   --check  exit 1 unless the targets of issue 7 are met
#
# Environment (all optional):
#   BENCH_DURATION=10     seconds per measured wrk run
#   BENCH_WARMUP=2        seconds of warm-up before each server's first run
#   BENCH_SMALL=1000      certificates in the small database
#   BENCH_LARGE=1000000   certificates in the big one (--big)
#   BENCH_SERVER_THREADS  worker threads of both servers (default: the
#                         server's own default, 2 per core, at least 2)
#   BENCH_SERVER_BIN      benchmark this server binary instead of building
#                         target/release/instagift (e.g. a patched build)
#   BENCH_LEDGER_CHECK    1: run `instagift check` after the big run too
#                         (always run after the small one)
#   BENCH_FSYNC_DELAY_US  emulate slow storage (an SD card: 5000): every
#                         fsync of the server and of the SQLite limit waits
#                         this long (LD_PRELOAD of bench/slowfsync.c; needs cc)
#
# Output: a table on stdout and in target/bench/results.md; every wrk
# output, the server logs and the seed files under target/bench/.
# Exits non-zero if anything fails: a build, a non-2xx answer, a crashed
# server, a redemption that did not succeed.

set -euo pipefail

BIG=0
CHECK=0
for arg in "$@"; do
  case "$arg" in
    --big) BIG=1 ;;
    --check) CHECK=1 ;;
    -h | --help)
      sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    *)
      echo "bench/run.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
OUT=$TARGET/bench
WORK=$OUT/work
LOGS=$OUT/logs
DUR=${BENCH_DURATION:-10}
WARM=${BENCH_WARMUP:-2}
SMALL=${BENCH_SMALL:-1000}
LARGE=${BENCH_LARGE:-1000000}
CONNS=(1 8 32)
CORES=$(nproc)
LUA=$ROOT/bench/wrk.lua
STARTED=$(date +%s)

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

# Every process we start, stopped on any exit.
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill -KILL "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# ---------------------------------------------------------------- setup

ensure_wrk() {
  command -v wrk >/dev/null && return
  log "wrk is missing: installing it from Debian (apt-get install wrk)"
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "wrk is not installed and neither root nor sudo is available; install the Debian package wrk"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y wrk >/dev/null ||
    { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y wrk >/dev/null; } ||
    die "cannot install wrk"
  command -v wrk >/dev/null || die "wrk still missing after apt-get"
}

build() {
  log "building release binaries (cargo build --release --examples; cargo build --release)"
  cargo build --release --examples || die "cargo build --release --examples"
  cargo build --release --bin instagift || die "cargo build --release"
  local built=${BENCH_SERVER_BIN:-$TARGET/release/instagift}
  [ -x "$built" ] || die "no server binary at $built"
  # Run copies: a cargo build in the same target directory during the run
  # (another engineer's, an editor's) must not swap a binary under test.
  EX=$OUT/bin
  rm -rf "$EX"
  mkdir -p "$EX"
  cp "$built" "$EX/instagift"
  SERVER=$EX/instagift
  for b in bare_http sqlite_commit seed startup_time; do
    [ -x "$TARGET/release/examples/$b" ] || die "no example binary $TARGET/release/examples/$b"
    cp "$TARGET/release/examples/$b" "$EX/$b"
  done
  # SLOW: the environment of the processes whose fsyncs are slowed.
  SLOW=()
  if [ -n "${BENCH_FSYNC_DELAY_US:-}" ]; then
    cc -O2 -shared -fPIC -o "$EX/slowfsync.so" "$ROOT/bench/slowfsync.c" -ldl || die "cannot build bench/slowfsync.c"
    SLOW=(env LD_PRELOAD="$EX/slowfsync.so" FSYNC_DELAY_US="$BENCH_FSYNC_DELAY_US")
    log "emulating slow storage: every fsync of the server and the SQLite limit waits ${BENCH_FSYNC_DELAY_US} us"
  fi
}

# ------------------------------------------------------------- processes

# start NAME CMD... : starts a server whose first stdout line says
# "... listening on http://ADDR", waits for that line; sets SPID and ADDR.
start() {
  local name=$1
  shift
  : >"$LOGS/$name.stdout"
  "$@" >"$LOGS/$name.stdout" 2>"$LOGS/$name.log" &
  SPID=$!
  PIDS+=("$SPID")
  local i line=""
  for ((i = 0; i < 1500; i++)); do
    line=$(head -n 1 "$LOGS/$name.stdout")
    case "$line" in *"listening on http://"*) break ;; esac
    kill -0 "$SPID" 2>/dev/null || die "$name exited at start: $(tail -n 5 "$LOGS/$name.log")"
    sleep 0.01
  done
  ADDR=$(sed -n '1s|.*listening on http://\([^ ]*\).*|\1|p' "$LOGS/$name.stdout")
  [ -n "$ADDR" ] || die "$name did not print its address within 15 s"
  log "$name: pid $SPID on http://$ADDR"
}

# stop PID [expect_clean]: SIGTERM, wait (bounded); with expect_clean the
# exit status must be 0.
stop() {
  local pid=$1 clean=${2:-}
  kill -TERM "$pid" 2>/dev/null || true
  (sleep 20 && kill -KILL "$pid" 2>/dev/null) &
  local dog=$! status=0
  wait "$pid" || status=$?
  kill "$dog" 2>/dev/null || true
  wait "$dog" 2>/dev/null || true
  if [ -n "$clean" ] && [ "$status" != 0 ]; then
    die "server $pid exited with status $status on SIGTERM"
  fi
}

# CPU time in clock ticks: the whole machine busy, one process, and this
# shell's waited-for children (wrk).
busy_jiffies() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
proc_jiffies() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Sets KIDS (`times` must run in this shell, not in a $(...) subshell).
children_jiffies() {
  times >"$OUT/.times"
  KIDS=$(awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%d", t * hz }' "$OUT/.times")
}

proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

alive() { kill -0 "$1" 2>/dev/null || die "$2 (pid $1) has crashed: $(tail -n 5 "$3")"; }

# ------------------------------------------------------------------ wrk

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# wrk_run NAME CONNS PID SERVERLOG [VAR=VALUE...]: one wrk run with
# bench/wrk.lua; checks every answer; sets RPS P50 P99 (ms) OKS ISSUED NEXT.
wrk_run() {
  local name=$1 conns=$2 pid=$3 slog=$4 dur=${DURATION_OVERRIDE:-$DUR}
  shift 4
  local threads=$((conns < CORES ? conns : CORES))
  local out=$LOGS/$name.wrk.txt
  warm_pool "$((conns + 4))" || die "cannot open warm-up connections to $ADDR"
  echo "load before: $(cat /proc/loadavg)" >"$out"
  local busy0 srv0 kids0 t0
  children_jiffies
  busy0=$(busy_jiffies) srv0=$(proc_jiffies "$pid") kids0=$KIDS t0=$(date +%s%N)
  env "$@" BENCH_THREADS="$threads" \
    wrk -t"$threads" -c"$conns" -d"${dur}s" --timeout 10s --latency -s "$LUA" "http://$ADDR/" >>"$out" 2>&1 &
  local wrk_pid=$!
  sleep "$(awk -v d="$dur" 'BEGIN { print d / 2 }')"
  local starved
  starved=$(starved_connections)
  ps -eo pcpu,comm --sort=-pcpu | head -n 6 >>"$out"
  wait "$wrk_pid" || die "wrk failed for $name: $(tail -n 3 "$out")"
  echo "starved connections at mid-run: $starved" >>"$out"
  # Share of the machine's CPU used by neither wrk nor the server.
  children_jiffies
  OTHER=$(awk -v b="$(($(busy_jiffies) - busy0))" -v s="$(($(proc_jiffies "$pid") - srv0))" \
    -v k="$((KIDS - kids0))" -v ns="$(($(date +%s%N) - t0))" -v c="$CORES" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { o = (b - s - k) / (ns / 1e9 * c * hz) * 100; if (o < 0) o = 0; printf "%.0f", o }')
  echo "other processes' CPU during the run: $OTHER % of the machine" >>"$out"
  alive "$pid" "the server under test" "$slog"
  if [ "$starved" != 0 ]; then
    WARNINGS+=("$name: $starved of $conns connections made no progress for 1 s at mid-run (tiny_http task-pool starvation: the figure is for fewer connections)")
    log "WARNING ${WARNINGS[-1]}"
  fi
  local line
  line=$(grep '^RESULT ' "$out" | tail -n 1)
  [ -n "$line" ] || die "no RESULT line from wrk for $name (see $out)"
  local requests errors bad ok exhausted
  requests=$(field requests "$line")
  errors=$(field errors "$line")
  bad=$(field bad "$line")
  ok=$(field ok "$line")
  exhausted=$(field exhausted "$line")
  EXHAUSTED=$exhausted
  if [ "$exhausted" != 0 ]; then
    OKS=$ok ISSUED=$(field issued "$line")
    log "$name: the pool of certificates to redeem ran out; this run does not count"
    return 0
  fi
  [ "$bad" = 0 ] || die "$name: $bad unexpected answers, first: $(field first_bad "$line" | tr _ ' ')"
  [ "$errors" = 0 ] || die "$name: wrk socket errors or timeouts: $line"
  [ "$ok" = "$requests" ] && [ "$requests" -gt 0 ] || die "$name: $ok good answers of $requests"
  RPS=$(field rps "$line")
  P50=$(awk -v u="$(field p50_us "$line")" 'BEGIN { printf "%.2f", u / 1000 }')
  P99=$(awk -v u="$(field p99_us "$line")" 'BEGIN { printf "%.2f", u / 1000 }')
  OKS=$ok
  ISSUED=$(field issued "$line")
  NEXT=$(field next_offset "$line")
  log "$name: $RPS req/s, p50 $P50 ms, p99 $P99 ms ($requests answers, all as expected; other processes used $OTHER % of the CPU)"
}

# warm_pool N: opens N keep-alive connections to $ADDR one after the
# other, each answered before the next opens, then closes them all, so the
# measured run starts with N idle connection threads. tiny_http 0.12 as
# published queued a burst of new connections behind idle threads that had
# not woken yet (a queued connection waited until a running one closed);
# the vendored copy fixes that (vendor/tiny_http/PATCHES.md), and the
# starvation check below would report it if it came back. Warming still
# keeps thread creation out of the measured seconds.
warm_pool() {
  local n=$1 host=${ADDR%:*} port=${ADDR##*:} fd line i
  local fds=()
  for ((i = 0; i < n; i++)); do
    exec {fd}<>"/dev/tcp/$host/$port" || return 1
    printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n\r\n' "$ADDR" >&"$fd"
    IFS= read -r -t 5 line <&"$fd" || return 1
    case "$line" in "HTTP/1.1 200"*) ;; *) return 1 ;; esac
    fds+=("$fd")
  done
  for fd in "${fds[@]}"; do
    exec {fd}>&-
  done
  sleep 0.2
}

# starved_connections: how many of the server's connections made no
# progress in one second (the bytes received on them did not grow: their
# request sits unread, so the client sends nothing new).
starved_connections() {
  local port=${ADDR##*:} before after
  received() {
    ss -Htin state established "( sport = :$port )" |
      awk '/^[0-9]/ { peer = $4; next }
           { for (i = 1; i <= NF; i++) if ($i ~ /^bytes_received:/) { split($i, x, ":"); print peer, x[2] } }' |
      sort
  }
  before=$(received)
  sleep 1
  after=$(received)
  join <(echo "$before") <(echo "$after") | awk '$2 == $3 { n++ } END { print n + 0 }'
}

declare -A R # results: R[key]=value
WARNINGS=()

# ------------------------------------------------------------ the limits

measure_limits() {
  log "limit 1: bare SQLite durable single-row commits on $WORK for ${DUR}s"
  "${SLOW[@]+"${SLOW[@]}"}" "$EX/sqlite_commit" --db "$WORK/commit.db" --seconds "$DUR" >"$LOGS/sqlite_commit.txt" ||
    die "sqlite_commit failed"
  local line
  line=$(grep '^RESULT ' "$LOGS/sqlite_commit.txt")
  R[commit.rate]=$(field rate "$line")
  R[commit.p50]=$(awk -v u="$(field p50_us "$line")" 'BEGIN { printf "%.2f", u / 1000 }')
  R[commit.p99]=$(awk -v u="$(field p99_us "$line")" 'BEGIN { printf "%.2f", u / 1000 }')
  rm -f "$WORK"/commit.db*
  log "limit 1: ${R[commit.rate]} commits/s, p50 ${R[commit.p50]} ms, p99 ${R[commit.p99]} ms"

  log "limit 2: bare tiny_http (examples/bare_http.rs)"
  local threads_arg=()
  [ -n "${BENCH_SERVER_THREADS:-}" ] && threads_arg=(--threads "$BENCH_SERVER_THREADS")
  start bare "$EX/bare_http" --listen 127.0.0.1:0 "${threads_arg[@]+"${threads_arg[@]}"}"
  local pid=$SPID c
  local list=(BENCH_LIST="$WORK/small/ids.txt" BENCH_PREFIX=/v2/certificates/)
  DURATION_OVERRIDE=$WARM wrk_run bare.warmup 8 "$pid" "$LOGS/bare.log" "${list[@]}"
  for c in "${CONNS[@]}"; do
    wrk_run "bare.c$c" "$c" "$pid" "$LOGS/bare.log" "${list[@]}"
    R[bare.$c.rps]=$RPS R[bare.$c.p50]=$P50 R[bare.$c.p99]=$P99 R[bare.$c.other]=$OTHER
  done
  R[bare.hwm]=$(proc_kb "$pid" VmHWM)
  stop "$pid"
}

# ------------------------------------------------- the server, one size

seed() {
  local size=$1 n=$2
  rm -rf "${WORK:?}/$size"
  mkdir -p "$WORK/$size"
  log "seeding $n certificates ($size)"
  local t0=$SECONDS
  "$EX/seed" --db "$WORK/$size/db" --out "$WORK/$size" --certificates "$n" \
    >"$LOGS/seed.$size.txt" 2>&1 || die "seed failed: $(tail -n 3 "$LOGS/seed.$size.txt")"
  R[$size.seed_s]=$((SECONDS - t0))
  log "$(grep '^seed:' "$LOGS/seed.$size.txt")"
}

measure_server() {
  local size=$1 n=$2
  local dir=$WORK/$size
  # shellcheck disable=SC1091
  . "$dir/seed.env"
  local creds=(BENCH_KEY="$MERCHANT_KEY" BENCH_SECRET="$MERCHANT_SECRET")
  local threads_arg=()
  [ -n "${BENCH_SERVER_THREADS:-}" ] && threads_arg=(--threads "$BENCH_SERVER_THREADS")
  local serve=("${SLOW[@]+"${SLOW[@]}"}" "$SERVER" --db "$dir/db" serve --listen 127.0.0.1:0 --rate-limits false
    "${threads_arg[@]+"${threads_arg[@]}"}")

  # Lookups first, on exactly n certificates.
  start "server.$size" "${serve[@]}"
  local pid=$SPID slog=$LOGS/server.$size.log c
  sleep 1
  R[$size.idle_kb]=$(proc_kb "$pid" VmRSS)
  log "server ($size): idle RSS ${R[$size.idle_kb]} kB"
  local cert=("${creds[@]}" BENCH_LIST="$dir/ids.txt" BENCH_PREFIX=/v2/certificates/)
  local code=("${creds[@]}" BENCH_LIST="$dir/codes.txt" BENCH_PREFIX=/v2/claim_codes/)
  DURATION_OVERRIDE=$WARM wrk_run "$size.warmup" 8 "$pid" "$slog" "${cert[@]}"
  for c in "${CONNS[@]}"; do
    wrk_run "$size.cert.c$c" "$c" "$pid" "$slog" "${cert[@]}"
    R[$size.cert.$c.rps]=$RPS R[$size.cert.$c.p50]=$P50 R[$size.cert.$c.p99]=$P99 R[$size.cert.$c.other]=$OTHER
  done
  for c in "${CONNS[@]}"; do
    wrk_run "$size.code.c$c" "$c" "$pid" "$slog" "${code[@]}"
    R[$size.code.$c.rps]=$RPS R[$size.code.$c.p50]=$P50 R[$size.code.$c.p99]=$P99 R[$size.code.$c.other]=$OTHER
  done
  # Redemptions, each on a distinct pending certificate. The pool of
  # such certificates is added now, between runs (the server is idle), and
  # topped up before each run to what that run will likely redeem: at one
  # connection half the durable commit rate, then 3 and 1.5 times the
  # previous run's rate (never more than the claim-code lookups), 25 %
  # margin. A run that still runs out is void and repeated with more.
  local offset=0 size_pool=0 oks=0 issued=0 prev_c=0 prev_rps=0 bound need
  for c in "${CONNS[@]}"; do
    if [ "$prev_c" = 0 ]; then
      bound=$(awk -v a="${R[commit.rate]}" -v b="${R[$size.code.$c.rps]}" 'BEGIN { a /= 2; print (a < b ? a : b) }')
    else
      bound=$(awk -v r="$prev_rps" -v k="$((c / prev_c > 4 ? 3 : 2))" -v b="${R[$size.code.$c.rps]}" \
        'BEGIN { x = r * (k == 3 ? 3 : 1.5); print (x < b ? x : b) }')
    fi
    need=$(awk -v b="$bound" -v d="$DUR" 'BEGIN { printf "%d", b * d * 1.25 + 1000 }')
    local attempt
    for attempt in 1 2 3; do
      if [ $((size_pool - offset)) -lt "$need" ]; then
        "$EX/seed" --db "$dir/db" --out "$dir" --pool "$need" --pool-only >>"$LOGS/seed.$size.txt" 2>&1 ||
          die "seed --pool-only failed: $(tail -n 3 "$LOGS/seed.$size.txt")"
        offset=0 size_pool=$need
        R[$size.pool]=$((${R[$size.pool]:-0} + need))
        log "added $need pending certificates for the redemptions at $c connections"
      fi
      wrk_run "$size.redeem.c$c" "$c" "$pid" "$slog" "${creds[@]}" BENCH_LIST="$dir/pool.txt" \
        BENCH_PREFIX=/v2/claim_codes/ BENCH_SUFFIX=/redemptions BENCH_METHOD=POST BENCH_EXPECT=201 \
        BENCH_ONCE=1 BENCH_OFFSET="$offset"
      oks=$((oks + OKS)) issued=$((issued + ISSUED))
      [ "$EXHAUSTED" = 0 ] && break
      # Faster than the bound (a noisy limit): again, with four times more.
      offset=$size_pool need=$((need * 4))
      [ "$attempt" = 3 ] && die "$size.redeem.c$c: the pool ran out three times"
    done
    R[$size.redeem.$c.rps]=$RPS R[$size.redeem.$c.p50]=$P50 R[$size.redeem.$c.p99]=$P99 R[$size.redeem.$c.other]=$OTHER
    offset=$NEXT prev_c=$c prev_rps=$RPS
  done
  R[$size.peak_kb]=$(proc_kb "$pid" VmHWM)
  stop "$pid" clean

  # Every redemption succeeded: wrk saw only 201s (checked per run); the
  # database holds one redemption per certificate, at least as many as wrk
  # counted and at most as many as it sent (the last requests of each run
  # are answered after wrk stopped listening); and the server's access log
  # has a 201 for every one of them and nothing else on that route.
  local counted dbn distinct logged other jobs txs largest
  counted=$("$EX/seed" --db "$dir/db" --count-redemptions) || die "cannot count redemptions"
  dbn=$(field redemptions " $counted")
  distinct=$(field distinct_certificates " $counted")
  logged=$(grep -c ' POST /v2/claim_codes/[^ ]*/redemptions 201 ' "$slog" || true)
  other=$(grep ' POST /v2/claim_codes/[^ ]*/redemptions ' "$slog" | grep -vc ' 201 ' || true)
  log "redemptions ($size): wrk saw $oks x 201 of $issued sent; database has $dbn on $distinct certificates; access log has $logged x 201 and $other others"
  [ "$dbn" = "$distinct" ] || die "a certificate was redeemed twice"
  [ "$dbn" -ge "$oks" ] && [ "$dbn" -le "$issued" ] || die "redemptions in the database ($dbn) outside [$oks, $issued]"
  [ "$logged" = "$dbn" ] && [ "$other" = 0 ] || die "the access log disagrees: $logged x 201, $other others, $dbn in the database"
  R[$size.redemptions]=$dbn
  # Group commit, as the writer counts it at shutdown (if this build logs it).
  local stats
  stats=$(sed -n 's/.*writer: \([0-9]*\) jobs in \([0-9]*\) transactions (largest batch \([0-9]*\)).*/\1 \2 \3/p' "$slog" | tail -n 1)
  if [ -n "$stats" ]; then
    read -r jobs txs largest <<<"$stats"
    R[$size.batch]=$(awk -v j="$jobs" -v t="$txs" -v l="$largest" 'BEGIN { printf "%d jobs in %d transactions: %.1f per commit on average, largest %d", j, t, (t > 0 ? j / t : 0), l }')
    log "group commit ($size): ${R[$size.batch]}"
  fi

  if [ "$size" = small ] || [ "${BENCH_LEDGER_CHECK:-0}" = 1 ]; then
    log "instagift check ($size): every certificate against its ledger"
    "$SERVER" --db "$dir/db" check >"$LOGS/check.$size.txt" 2>&1 ||
      die "instagift check failed: $(tail -n 3 "$LOGS/check.$size.txt")"
  fi
}

# ------------------------------------------------------------- the table

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "-"; else if (a / b < 0.1) printf "%.3f", a / b; else printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

TARGETS_MET=1
target() { # target DESCRIPTION VALUE OP LIMIT
  local ok
  ok=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { print ((op == ">=" ? v >= l : v <= l) ? "met" : "NOT MET") }')
  [ "$ok" = met ] || TARGETS_MET=0
  printf '| %s | %s | %s %s | %s |\n' "$1" "$2" "$3" "$4" "$ok"
}

report() {
  local sizes=(small) c t
  [ "$BIG" = 1 ] && sizes+=(big)
  local label_small label_big
  label_small=$(printf "%'d" "$SMALL" 2>/dev/null || echo "$SMALL")
  label_big=$(printf "%'d" "$LARGE" 2>/dev/null || echo "$LARGE")
  echo "# instagift benchmark results"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), built from commit ${R[rev]}"
  echo "- machine: $CORES cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
  echo "- disk of the databases: $(df -P "$WORK" | awk 'NR == 2 { print $1 }') ($(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || echo '?'))"
  echo "- load average before / after: ${R[load.before]} / $(cut -d' ' -f1-3 /proc/loadavg); wrk and the server share the same $CORES cores, and \"other CPU %\" is the share of the machine used by neither during that run (other processes: noise)"
  echo "- wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }'), ${DUR} s per run, threads = min(connections, cores), keep-alive; server: ${BENCH_SERVER_BIN:-target/release/instagift} (run from a copy), --rate-limits false, access log to a file"
  [ -n "${BENCH_FSYNC_DELAY_US:-}" ] && echo "- **slow storage emulated**: every fsync of the server and of the SQLite limit waited ${BENCH_FSYNC_DELAY_US} us more (BENCH_FSYNC_DELAY_US)"
  echo "- databases: $label_small$([ "$BIG" = 1 ] && echo " and $label_big") certificates (90 % pending, 10 % assigned) for the lookups; for the redemptions, pending certificates are added between runs, as many as each run could redeem: ${R[small.pool]}$([ "$BIG" = 1 ] && echo " and ${R[big.pool]}") in all"
  echo
  echo "## Limits (same run, same machine)"
  echo
  echo "| limit | conns | req/s | p50 ms | p99 ms | other CPU % |"
  echo "|---|---:|---:|---:|---:|---:|"
  for c in "${CONNS[@]}"; do
    echo "| bare tiny_http, fixed JSON | $c | ${R[bare.$c.rps]} | ${R[bare.$c.p50]} | ${R[bare.$c.p99]} | ${R[bare.$c.other]} |"
  done
  echo "| bare SQLite durable 1-row commit | 1 | ${R[commit.rate]} | ${R[commit.p50]} | ${R[commit.p99]} | |"
  for size in "${sizes[@]}"; do
    local label=$label_small
    [ "$size" = big ] && label=$label_big
    echo
    echo "## Server, $label certificates"
    echo
    echo "| request | conns | req/s | p50 ms | p99 ms | limit | ratio | other CPU % |"
    echo "|---|---:|---:|---:|---:|---|---:|---:|"
    for t in cert code redeem; do
      for c in "${CONNS[@]}"; do
        local name limit lname
        case $t in
          cert) name='GET /v2/certificates/{id} (expanded)' limit=${R[bare.$c.rps]} lname="bare http c$c" ;;
          code) name='GET /v2/claim_codes/{code}' limit=${R[bare.$c.rps]} lname="bare http c$c" ;;
          redeem) name='POST /v2/claim_codes/{code}/redemptions' limit=${R[commit.rate]} lname="1-row commits" ;;
        esac
        echo "| $name | $c | ${R[$size.$t.$c.rps]} | ${R[$size.$t.$c.p50]} | ${R[$size.$t.$c.p99]} | $lname | $(ratio "${R[$size.$t.$c.rps]}" "$limit") | ${R[$size.$t.$c.other]} |"
      done
    done
  done
  if [ "$BIG" = 1 ]; then
    echo
    echo "## Big / small"
    echo
    echo "| request | conns | small req/s | big req/s | big/small | small p99 ms | big p99 ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for t in cert code redeem; do
      for c in "${CONNS[@]}"; do
        echo "| $t | $c | ${R[small.$t.$c.rps]} | ${R[big.$t.$c.rps]} | $(ratio "${R[big.$t.$c.rps]}" "${R[small.$t.$c.rps]}") | ${R[small.$t.$c.p99]} | ${R[big.$t.$c.p99]} |"
      done
    done
  fi
  echo
  echo "## Resources"
  echo
  echo "| figure | small | big |"
  echo "|---|---:|---:|"
  echo "| release binary | $(awk -v b="${R[binary]}" 'BEGIN { printf "%.2f MiB (%d bytes)", b / 1048576, b }') | |"
  echo "| idle RSS after start (VmRSS) | $(mib "${R[small.idle_kb]}") MiB | $([ "$BIG" = 1 ] && echo "$(mib "${R[big.idle_kb]}") MiB") |"
  echo "| peak RSS under the load (VmHWM) | $(mib "${R[small.peak_kb]}") MiB | $([ "$BIG" = 1 ] && echo "$(mib "${R[big.peak_kb]}") MiB") |"
  echo "| start to first 200, empty database (median of ${R[startup.runs]}) | ${R[startup.empty]} ms | |"
  echo "| start to first 200, restart after kill -9 on that database (median) | ${R[startup.restart]} ms | |"
  echo "| seeding (s) | ${R[small.seed_s]} | $([ "$BIG" = 1 ] && echo "${R[big.seed_s]}") |"
  echo "| redemptions made (all verified) | ${R[small.redemptions]} | $([ "$BIG" = 1 ] && echo "${R[big.redemptions]}") |"
  echo "| group commit (writer's count, all redemption runs) | ${R[small.batch]:-not logged} | $([ "$BIG" = 1 ] && echo "${R[big.batch]:-not logged}") |"
  echo
  echo "## Targets (issue 7)"
  echo
  echo "| target | value | wanted | |"
  echo "|---|---:|---:|---|"
  target "GET certificate, 32 conns / bare tiny_http" "$(ratio "${R[small.cert.32.rps]}" "${R[bare.32.rps]}")" ">=" 0.5
  target "GET certificate, 32 conns, p99 ms" "${R[small.cert.32.p99]}" "<=" 10
  target "redemptions, 32 conns / 1-row durable commits" "$(ratio "${R[small.redeem.32.rps]}" "${R[commit.rate]}")" ">=" 3
  target "redemptions, 32 conns, p99 ms" "${R[small.redeem.32.p99]}" "<=" 25
  if [ "$BIG" = 1 ]; then
    for t in cert code redeem; do
      for c in "${CONNS[@]}"; do
        target "big/small req/s, $t, $c conns" "$(ratio "${R[big.$t.$c.rps]}" "${R[small.$t.$c.rps]}")" ">=" 0.8
      done
    done
  fi
  target "release binary, MiB" "$(awk -v b="${R[binary]}" 'BEGIN { printf "%.2f", b / 1048576 }')" "<=" 10
  target "idle RSS, MiB" "$(mib "${R[small.idle_kb]}")" "<=" 15
  target "peak RSS under load, MiB" "$(mib "${R[small.peak_kb]}")" "<=" 64
  if [ "$BIG" = 1 ]; then
    target "idle RSS (big), MiB" "$(mib "${R[big.idle_kb]}")" "<=" 15
    target "peak RSS under load (big), MiB" "$(mib "${R[big.peak_kb]}")" "<=" 64
  fi
  target "start to first response, empty db, ms" "${R[startup.empty]}" "<=" 100
  if [ "${#WARNINGS[@]}" -gt 0 ]; then
    echo
    echo "## Warnings"
    echo
    printf -- '- %s\n' "${WARNINGS[@]}"
  fi
  echo
  echo "Total time of this run: $(($(date +%s) - STARTED)) s (build included). Raw outputs: target/bench/logs/."
}

# ------------------------------------------------------------------ main

mkdir -p "$OUT" "$WORK" "$LOGS"
rm -f "$LOGS"/*
R[load.before]=$(cut -d' ' -f1-3 /proc/loadavg)
R[rev]="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock schema.sql static 2>/dev/null || echo ' + uncommitted changes in src')"
ensure_wrk
build
R[binary]=$(stat -c %s "$SERVER")

log "start-up time on an empty database (9 runs)"
"$EX/startup_time" --bin "$SERVER" --dir "$WORK/startup" --runs 9 >"$LOGS/startup.txt" ||
  die "startup_time failed: $(tail -n 3 "$LOGS/startup.txt")"
line=$(grep '^RESULT ' "$LOGS/startup.txt")
R[startup.runs]=9
R[startup.empty]=$(awk -v u="$(field empty_median_us "$line")" 'BEGIN { printf "%.1f", u / 1000 }')
R[startup.restart]=$(awk -v u="$(field restart_median_us "$line")" 'BEGIN { printf "%.1f", u / 1000 }')
log "$(grep 'median' "$LOGS/startup.txt")"

seed small "$SMALL"
measure_limits
measure_server small "$SMALL"
if [ "$BIG" = 1 ]; then
  seed big "$LARGE"
  measure_server big "$LARGE"
fi

report >"$OUT/results.md"
cat "$OUT/results.md"
log "written to $OUT/results.md"
if [ "$CHECK" = 1 ] && [ "$TARGETS_MET" != 1 ]; then
  log "--check: some targets are not met"
  exit 1
fi
