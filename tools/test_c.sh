#!/usr/bin/env bash
# Builds the C tests in tests/c against include/halo.h and the shared
# library target/release/libhalo.so, and runs each under valgrind: any
# memory error or definitely/indirectly lost byte fails.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/c/build
mkdir -p "$out"
lib=$PWD/target/release

for src in tests/c/test_*.c; do
  name=$(basename "$src" .c)
  gcc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude -Itests/c "$src" \
    -L"$lib" -Wl,-rpath,"$lib" -lhalo -lpthread -lm -o "$out/$name"
done

run() {
  local name=$1; shift
  echo "--- $name (valgrind)" >&2
  valgrind --quiet --error-exitcode=99 --leak-check=full --suppressions=tests/c/valgrind.supp \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    "$out/$name" "$@"
}

run test_volume tests/dicom-corpus/good

# The model suite: in full natively (concurrency included), and under
# valgrind in its quick form
# (libtorch under valgrind is many times slower; see tests/c/test_model.c).
scratch=$(mktemp -d)
echo "--- test_model (native)" >&2
"$out/test_model" samples/series samples/model "$scratch/full"
run test_model samples/series samples/model "$scratch/quick" quick
rm -rf "$scratch"

# A storage SCP on a free loopback port, stopped by its process id.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
dead=$(free_port)
received=$(mktemp -d)
"${HALO_STORESCP:-/usr/bin/storescp}" --aetitle STORESCP --output-directory "$received" "$port" &
scp_pid=$!
trap 'kill $scp_pid 2>/dev/null; rm -rf "$received"' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done
run test_send tests/dicom-corpus/good "$port" "$dead"
test "$(ls "$received" | wc -l)" -eq 4 || { echo "storescp received $(ls "$received" | wc -l) files, 4 sent" >&2; exit 1; }
