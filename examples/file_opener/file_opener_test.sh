#!/bin/sh
# Runs the file-opener example: a file below the worker's directory is read
# through the descriptor the worker sends; one outside is refused.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/allowed"
echo "the secret first line" > "$dir/allowed/notes.txt"
echo "not for you" > "$dir/other.txt"
bin=examples/file_opener
out=$("$bin/sandboxed_parent" "$bin/opener_worker" "$dir/allowed" \
        "$dir/allowed/notes.txt" "$dir/other.txt" || true)
echo "$out"
echo "$out" | grep -q "notes.txt: the secret first line"
echo "$out" | grep -q "other.txt: PERMISSION_DENIED"
# Every file served: the parent exits 0, after the worker exited by itself.
"$bin/sandboxed_parent" "$bin/opener_worker" "$dir/allowed" "$dir/allowed/notes.txt"
echo "file_opener example: OK"
