#!/usr/bin/env bash
# Applies migrations/NNNN_*.sql in file order to the database at URL $1, each file in one transaction.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
url="$1"
for file in "$here"/migrations/[0-9][0-9][0-9][0-9]_*.sql; do
    psql "$url" -q -X -v ON_ERROR_STOP=1 -1 -f "$file" >/dev/null
done
