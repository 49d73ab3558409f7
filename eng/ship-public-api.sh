#!/usr/bin/env bash
# Usage: eng/ship-public-api.sh [repo root]. Moves every project's PublicAPI.Unshipped.txt entries into PublicAPI.Shipped.txt.
set -euo pipefail
cd "${1:-.}"
for dir in src/*/; do
  u="$dir/PublicAPI.Unshipped.txt"; s="$dir/PublicAPI.Shipped.txt"
  [ -f "$u" ] || continue
  { echo '#nullable enable'; { tail -n +2 "$s"; tail -n +2 "$u"; } | grep -v '^$' | LC_ALL=C sort -u; } > "$s.tmp" && mv "$s.tmp" "$s"
  echo '#nullable enable' > "$u"
  echo "$dir: $(($(wc -l < "$s") - 1)) shipped"
done
