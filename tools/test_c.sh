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
  valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    "$out/$name" "$@"
}

run test_volume tests/dicom-corpus/good
