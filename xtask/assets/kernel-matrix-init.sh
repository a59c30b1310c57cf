#!/bin/sh
# /init (PID 1) of the kernel-matrix initramfs that `cargo xtask kernel-matrix`
# boots in qemu. It starts gatewatch on the whole cgroup v2 tree, makes real
# connections on loopback, checks they are counted, prints exactly one
#   GATEWATCH-VERDICT: PASS|FAIL kernel=RELEASE DETAIL
# line on the serial console and powers off. Every wait is bounded.
export PATH=/bin
# The host tells a boot that failed before /init (a guest kernel crash
# under emulation) from a verdict on gatewatch by this line.
echo "GATEWATCH-INIT: started"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
ip link set lo up

KERNEL=$(uname -r)
LOG=/tmp/gatewatch.log
METRICS=http://127.0.0.1:9464/metrics

verdict() {
    echo "GATEWATCH-VERDICT: $1 kernel=$KERNEL $2"
    sync
    poweroff -f
    echo o >/proc/sysrq-trigger
    sleep 5
}

fail() {
    echo "--- gatewatch log ---"
    cat "$LOG" 2>/dev/null
    echo "--- end gatewatch log ---"
    echo "--- dmesg (last lines) ---"
    dmesg | tail -n 10
    echo "--- end dmesg ---"
    verdict FAIL "$1"
}

# The guest's own deadline, below the host's boot timeout (TCG: 540 s).
(sleep 480; fail "guest deadline: checks did not finish in 480s") &

[ -r /sys/kernel/btf/vmlinux ] || fail "no /sys/kernel/btf/vmlinux (kernel built without CONFIG_DEBUG_INFO_BTF)"

# (busybox 1.35's `wget -T` crashes, hence `timeout 5 wget`.)
# Peers: one HTTP server per address family, classified as two providers.
mkdir -p /tmp/www
echo "kernel matrix" >/tmp/www/index.html
httpd -p 127.0.0.2:7000 -h /tmp/www || fail "cannot start the IPv4 test server"
httpd -p '[::1]:7001' -h /tmp/www || fail "cannot start the IPv6 test server"

# Starts gatewatch on the whole tree with extra arguments, logging to $LOG;
# returns once it is ready (its pid in $GW).
start_gatewatch() {
    gatewatch run --cgroup /sys/fs/cgroup --metrics-addr 127.0.0.1:9464 \
        --log-level info "$@" >"$LOG" 2>&1 &
    GW=$!
    i=0
    until grep -qs "ready: metrics on" "$LOG"; do
        kill -0 "$GW" 2>/dev/null || { wait "$GW"; fail "gatewatch $* exited with status $? before it was ready"; }
        i=$((i + 1))
        # 6.1's verifier spends its whole budget on --tls-probes' long copy
        # before gatewatch falls back to the short one: about a minute
        # under emulation, a second or two on hardware.
        [ "$i" -gt 1500 ] && fail "gatewatch $* not ready after 150s"
        sleep 0.1
    done
}

start_gatewatch --provider matrix4=127.0.0.2:7000 --provider 'matrix6=[::1]:7001' --tls-probes
timeout 5 wget -q -O /tmp/readyz http://127.0.0.1:9464/readyz || fail "/readyz did not answer 200"
# --tls-probes' programs load here, in the long or the short variant (the
# guest has no tracefs, so they are not attached): none may be refused.
if grep -q "the kernel refused program" "$LOG"; then
    fail "--tls-probes: the kernel refused a program in both variants"
fi

# Every program is attached through a bpf link held by gatewatch.
programs=$(sed -n 's/.*attached \([0-9]*\) programs.*/\1/p' "$LOG" | head -n 1)
links=$(cat /proc/"$GW"/fdinfo/* 2>/dev/null | grep -c '^link_type:')
[ -n "$programs" ] || fail "no 'attached N programs' line in the log"
[ "$links" -ge "$programs" ] || fail "$programs programs attached but gatewatch holds $links bpf links"

# connect4 + egress (HTTP Host) + lifecycle (bytes at close); connect6.
timeout 5 wget -q -O /tmp/r4 --header 'Host: matrix.test' http://127.0.0.2:7000/ || fail "IPv4 request to the test server failed"
timeout 5 wget -q -O /tmp/r6 'http://[::1]:7001/' || fail "IPv6 request to the test server failed"

i=0
while :; do
    timeout 5 wget -q -O /tmp/metrics "$METRICS" || fail "GET /metrics failed"
    c4=$(grep '^gatewatch_connections_total{' /tmp/metrics | grep 'provider="matrix4"' | grep -c 'name_source="http_host"')
    c6=$(grep '^gatewatch_connections_total{' /tmp/metrics | grep -c 'provider="matrix6"')
    b4=$(grep '^gatewatch_bytes_total{' /tmp/metrics | grep -c 'provider="matrix4"')
    [ "$c4" -ge 1 ] && [ "$c6" -ge 1 ] && [ "$b4" -ge 1 ] && break
    i=$((i + 1))
    if [ "$i" -gt 50 ]; then
        echo "--- /metrics (gatewatch_ lines) ---"
        grep '^gatewatch_' /tmp/metrics
        echo "--- end /metrics ---"
        fail "connections not counted after 10s (IPv4 with Host: $c4, IPv6: $c6, IPv4 bytes: $b4)"
    fi
    sleep 0.2
done

# The evidence, for the serial log the host keeps.
echo "--- counted ---"
grep -E '^gatewatch_(connections|bytes)_total\{.*provider="matrix[46]"' /tmp/metrics
echo "--- end counted ---"

kill -TERM "$GW"
i=0
while kill -0 "$GW" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -gt 100 ] && fail "gatewatch did not exit within 10s of SIGTERM"
    sleep 0.1
done
wait "$GW" || fail "gatewatch exited with status $? after SIGTERM"
echo "--- gatewatch log ---"
cat "$LOG"
echo "--- end gatewatch log ---"

# --enforce deny loads the programs' enforcement paths (the verifier skips
# them when enforcement is off): non-AI traffic passes, and a request whose
# Host names a model endpoint is stopped before it leaves.
LOG=/tmp/gatewatch-deny.log
gatewatch run --cgroup /sys/fs/cgroup --metrics-addr 127.0.0.1:9464 \
    --log-level info --enforce deny >"$LOG" 2>&1 &
GW=$!
i=0
until grep -qs "ready: metrics on" "$LOG"; do
    if ! kill -0 "$GW" 2>/dev/null; then
        echo "--- gatewatch --enforce deny log ---"
        head -n 30 "$LOG"
        echo "--- end gatewatch --enforce deny log ---"
        fail "gatewatch --enforce deny exited before it was ready"
    fi
    i=$((i + 1))
    # Under emulation the verifier is slow to reach its verdict.
    [ "$i" -gt 3000 ] && fail "gatewatch --enforce deny neither ready nor refused after 300s"
    sleep 0.1
done
timeout 5 wget -q -O /tmp/r4 http://127.0.0.2:7000/ || fail "non-AI request failed under --enforce deny"
if timeout 5 wget -q -O /tmp/r5 --header "Host: api.openai.com" http://127.0.0.2:7000/; then
    fail "a request naming api.openai.com in its Host header passed under --enforce deny"
fi
kill -TERM "$GW"
wait "$GW" || fail "gatewatch --enforce deny exited with status $? after SIGTERM"
verdict PASS "$programs programs attached as $links bpf links; IPv4 (named by HTTP Host, bytes at close) and IPv6 connections counted; clean detach; --enforce deny loaded: non-AI traffic passed, a Host naming a model endpoint stopped"
