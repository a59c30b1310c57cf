#!/usr/bin/env bash
# Long soak of gatewatch (10 minutes by default).
#
#   sudo tests/scripts/soak.sh [SECONDS] [RATE]
#
# Runs the soak test of tests/tests/hardening.rs for longer: gatewatch
# (release build by default; SOAK_PROFILE=debug for the debug build) is
# attached to a test cgroup while gwload, inside that cgroup, opens RATE
# connections/s (default 2000) to a loopback HTTP responder for SECONDS
# (default 600), each a whole request/response exchange with a Host header
# cycling over 5000 names (so label folding runs all along). gatewatch's
# VmRSS is sampled every second. It passes when:
#   - no event is lost (gatewatch_events_dropped_total == 0),
#   - every connection made is counted exactly once
#     (sum of gatewatch_connections_total == connections made, none failed),
#     at least 99.9% of them named by their Host header,
#   - the active gauge is back to 0 and nothing was evicted,
#   - endpoint values stay within the default label cap (1000 + _other),
#   - RSS growth is bounded: the mean VmRSS over the last quarter of the
#     run is at most 10% + 4 MiB above the mean over the second quarter.
# The test prints one "soak:" line with the rate, totals, CPU and RSS.
# Bounded: the test gives up after 3 x SECONDS + 60 s; every process,
# cgroup and attachment is removed by drop guards.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-${SOAK_SECONDS:-600}}
rate=${2:-${SOAK_RATE:-2000}}
profile=${SOAK_PROFILE:-release}

if [ "$(id -u)" != 0 ]; then
    echo "soak.sh: run as root (it attaches eBPF programs)" >&2
    exit 1
fi
case "$profile" in
    release) cargo build --release -p observer ;;
    debug) cargo build -p observer ;;
    *) echo "soak.sh: SOAK_PROFILE must be release or debug" >&2; exit 2 ;;
esac

export GATEWATCH_BIN="$PWD/target/$profile/gatewatch"
export SOAK_SECONDS="$seconds" SOAK_RATE="$rate" CI=true
echo "soak.sh: $seconds s at $rate connections/s against $GATEWATCH_BIN"
exec cargo test -p tests --test hardening -- --exact \
    soak_counts_every_connection_exactly_without_drops_or_memory_growth --nocapture
