#!/usr/bin/env bash
# OpenDKIM's own test scripts (opendkim/tests in its source: miltertest Lua scripts, their
# configurations and the shell drivers), which apps/milterd/test/opendkim-scripts.test.ts
# runs against inkan-milterd. They come from Debian's source package of the opendkim that
# is installed, through apt with this machine's own package sources (as deb-src), in a
# private apt state: the system's apt lists are left alone. Kept in .cache/opendkim-tests.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/opendkim-tests
[ -f "$dest/complete" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/sources" "$work/lists/partial" "$work/download"
# Every "deb" source of this machine, as "deb-src".
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] && sed -E 's/^Types:.*\bdeb\b.*$/Types: deb-src/' "$f" > "$work/sources/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -e "$f" ] && sed -nE 's/^deb (.*)$/deb-src \1/p' "$f" > "$work/sources/$(basename "$f").list"
done
apt_private=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/sources" -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
apt-get "${apt_private[@]}" update -qq
version=$(dpkg-query -W -f='${Version}' opendkim 2>/dev/null || true)
cd "$work/download"
apt-get "${apt_private[@]}" source --download-only -qq "opendkim${version:+=$version}" ||
  apt-get "${apt_private[@]}" source --download-only -qq opendkim
cd - >/dev/null
orig=$(ls "$work"/download/opendkim_*.orig.tar.* | head -n 1)
tar -xf "$orig" -C "$work" --wildcards '*/opendkim/tests/*'
rm -rf "$dest"
mkdir -p "$dest"
mv "$work"/*/opendkim/tests "$dest/tests"
basename "$orig" > "$dest/complete"
echo "OpenDKIM's test scripts: $(ls "$dest/tests" | wc -l) files from $(cat "$dest/complete")"
