#!/bin/sh
# Runs the frame-producer example: 20 frames of 64 MiB (1.25 GiB in all)
# reach the consumer over shm, each read in place and checked.
set -eu
dir=$(mktemp -d)
bin=examples/frame_producer
"$bin/producer" "unix:$dir/camera.sock" > "$dir/out" &
producer=$!
trap 'kill $producer 2>/dev/null || true; wait $producer 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q READY "$dir/out" 2>/dev/null && break; sleep 0.1; done
out=$("$bin/consumer" "shm:$dir/camera.sock" 20)
echo "$out"
echo "$out" | grep -q "^20 frames, 1342177280 bytes, 0 bad: OK"
echo "frame_producer example: OK"
