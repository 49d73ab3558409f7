#!/usr/bin/env bash
# Adds every public symbol the PublicApiAnalyzers report as undeclared (RS0016) to the project's
# PublicAPI.Unshipped.txt, and removes the ones it reports as gone (RS0017). Review the diff.
# Usage: eng/update-public-api.sh src/TokenMeter
set -euo pipefail
proj=${1:?usage: eng/update-public-api.sh src/PROJECT}
file="$proj/PublicAPI.Unshipped.txt"
out=$(dotnet build "$proj" --no-incremental -p:TreatWarningsAsErrors=false 2>&1 || true)
added=$(printf '%s\n' "$out" | grep -oP "RS0016: Symbol '\K.*?(?=' is not part of the declared public API)" | sed "s/&apos;/'/g; s/&lt;/</g; s/&gt;/>/g" | sort -u || true)
removed=$(printf '%s\n' "$out" | grep -oP "RS0017: Symbol '\K.*?(?=' is part of the declared API)" | sort -u || true)
[ -f "$file" ] || echo '#nullable enable' > "$file"
if [ -n "$added" ]; then printf '%s\n' "$added" >> "$file"; fi
if [ -n "$removed" ]; then
  while IFS= read -r sym; do grep -vxF -- "$sym" "$file" > "$file.tmp" || true; mv "$file.tmp" "$file"; done <<< "$removed"
fi
{ head -n1 "$file"; tail -n +2 "$file" | sort -u; } > "$file.tmp" && mv "$file.tmp" "$file"
echo "added $(printf '%s' "$added" | grep -c . || true), removed $(printf '%s' "$removed" | grep -c . || true) in $file"
