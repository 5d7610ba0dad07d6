#!/usr/bin/env bash
# Run inkan-milterd from this clone: installs the npm dependencies from the lockfile,
# builds, and starts the daemon with the given arguments (none: built-in defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
PNPM_VERSION=10.34.8
if command -v pnpm >/dev/null && [ "$(pnpm --version)" = "$PNPM_VERSION" ]; then
  pnpm() { command pnpm "$@"; }
else
  pnpm() { npx --yes "pnpm@$PNPM_VERSION" "$@"; }
fi
pnpm install --frozen-lockfile --reporter=silent >&2
pnpm exec turbo run build --filter=@inkan/milterd... --output-logs=errors-only >&2
exec node apps/milterd/bin/inkan-milterd.js "$@"
