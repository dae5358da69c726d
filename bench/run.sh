#!/usr/bin/env bash
# neo-ir benchmark: detection latency (with the Prometheus comparison when installed), then
# scale. Usage:
#   bench/run.sh [--install] [--iterations N] [--endpoints N] [--seconds S]
# --install   apt-get install prometheus prometheus-alertmanager first (Debian; needs root)
# Everything else is passed to the two benchmarks: --iterations to `detection`,
# --endpoints and --seconds to `scale`.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."

install=0
iterations=20
endpoints=10000
seconds=30
while [ $# -gt 0 ]; do
    case "$1" in
        --install) install=1 ;;
        --iterations) iterations="$2"; shift ;;
        --endpoints) endpoints="$2"; shift ;;
        --seconds) seconds="$2"; shift ;;
        -h|--help) sed -n '2,7p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$install" = 1 ]; then
    if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus prometheus-alertmanager
    fi
fi

cargo build --release -p neo-ir-bench
bin=target/release/neo-ir-bench

echo "== detection ($iterations iterations per fault kind) =="
"$bin" detection --iterations "$iterations"
echo
echo "== scale ($endpoints endpoints, $seconds s) =="
"$bin" scale --endpoints "$endpoints" --seconds "$seconds"
