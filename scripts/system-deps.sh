#!/usr/bin/env bash
# Checks the system tools Kaizen needs (Java ≥ 17 and Maven for the local Kafka broker,
# PostgreSQL's server binaries for the read-model tests, wrk for the benchmarks, Chromium for the dashboard's
# browser tests) and installs the missing ones from Debian's packages when running as root.
set -euo pipefail
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v jq >/dev/null || missing+=(jq)      # the seed's polling script, run by the e2e tests
command -v curl >/dev/null || missing+=(curl)
command -v wrk >/dev/null || missing+=(wrk)    # the load generator of bench/api_ratio.py (make bench)
# Headless Chromium for tests/e2e/browser, driven by Playwright (PyPI) through this executable:
# Playwright's own browser download (`playwright install`) is never used.
command -v chromium >/dev/null || missing+=(chromium)
command -v tmux >/dev/null || missing+=(tmux)      # drives the CLI's interactive tests (tests/e2e)
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]} (install them with apt-get as root)" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
