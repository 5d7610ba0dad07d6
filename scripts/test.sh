#!/usr/bin/env bash
# inkan's whole test suite, from a fresh clone: installs the Debian packages the tests
# use (real DNS server, real MTAs, independent DKIM implementations), the npm
# dependencies from the lockfile, builds every package and runs every test.
# Needs Node.js 20+ and npm; root or sudo for apt-get on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(
  dnsmasq-base                     # real DNS server on loopback for key lookups
  bind9-dnsutils bind9-utils       # dig, named-checkzone
  python3-dkim python3-dnspython   # dkimpy, an independent DKIM implementation
  libmail-dkim-perl libnet-dns-perl libjson-pp-perl  # Perl's Mail::DKIM, another one
  opendkim opendkim-tools miltertest  # OpenDKIM as a reference peer, miltertest
  postfix                          # a real MTA for the milter tests (private instance)
  gcc libc6-dev                    # a small preload library for the private Sendmail (fetched by the tests)
  postgresql redis-server          # shared key and signing tables for many milterd hosts (private instances)
  rspamd                           # rspamd 3.4 as a signing milter peer in the benchmark (private instances)
  openssl iproute2 procps
)
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  echo "installing Debian packages: ${missing[*]}"
  # The tests run their own private Postfix, PostgreSQL and Redis; leave the system's alone.
  echo 'postfix postfix/main_mailer_type select No configuration' | "${SUDO[@]}" debconf-set-selections
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# OpenDKIM's own test scripts, from Debian's source package (once; kept in .cache/).
bash scripts/opendkim-test-scripts.sh

PNPM_VERSION=10.34.8
if command -v pnpm >/dev/null && [ "$(pnpm --version)" = "$PNPM_VERSION" ]; then
  pnpm() { command pnpm "$@"; }
else
  pnpm() { npx --yes "pnpm@$PNPM_VERSION" "$@"; }
fi
pnpm install --frozen-lockfile --reporter=append-only
pnpm run build
# The benchmarks are not tests; their short smoke run only checks that they still work.
if pnpm --filter @inkan/bench bench -- --quick > .bench-quick.log 2>&1; then
  echo "benchmark smoke run: ok (figures in .bench-quick.log)"
else
  tail -n 30 .bench-quick.log
  echo "benchmark smoke run: FAILED"
  exit 1
fi
# A short coverage-guided fuzzing pass, 4 s per target, fixed seed so that a test run is repeatable
# (pnpm fuzz is the long run, seeded afresh); a crash fails.
if pnpm --filter @inkan/fuzz fuzz -- --quick --seed 20261128 > .fuzz-quick.log 2>&1; then
  echo "fuzzing quick pass: no crashes (figures in .fuzz-quick.log)"
else
  tail -n 40 .fuzz-quick.log
  echo "fuzzing quick pass: FAILED (inputs in tools/fuzz/crashes/)"
  exit 1
fi
rc=0
pnpm exec vitest run --reporter=default --reporter=json --outputFile=.vitest-results.json || rc=$?
node scripts/test-summary.mjs .vitest-results.json || rc=${rc:-1}
exit "$rc"
