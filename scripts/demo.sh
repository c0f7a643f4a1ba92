#!/usr/bin/env bash
# The main job on built-in data. Runs inside the nox "demo" session (./dev demo [OUT]).
# Every step resumes where it stopped when run again.
set -euo pipefail
out=${1:-out}
mkdir -p "$out"
echo "== 1. search spaces and equivalence (actcore) =="
act ops | tail -n 1
echo "-- functions in binary(unary(x),unary(x)) (5,103) and their equivalence classes (2,791)"
act space count 'binary(unary(x),unary(x))'
act space count --unique 'binary(unary(x),unary(x))' | tail -n 1
four_node=('binary(unary(unary(x)),unary(x))' 'binary(unary(x),unary(unary(x)))'
  'n-ary(unary(x),unary(x),unary(x))' 'unary(binary(unary(x),unary(x)))'
  'unary(unary(unary(unary(x))))')
echo "-- the union of the five four-node schemas (1,023,516) and its equivalence classes (387,359)"
act space count "${four_node[@]}" | tail -n 1
act space count --unique "${four_node[@]}" | tail -n 1
act fn plot 'relu(x)' 'swish(x)' 'max(relu(x),cosh(elu(x)))' 'sum_n(abs(x),swish(x),sigmoid(x))' \
  -o "$out/functions.png"

echo "== 2. live surrogate search on mlp-digits (actsearch + actfim + actbench) =="
act search run --task mlp-digits --space 'binary(unary(x),unary(x))' --budget 40 \
  --workers 2 --out "$out/search"

echo "== 3. the published search protocol replayed on the shipped table =="
act search replay --table act-bench-digits-mlp --regressor knr \
  --features union --features outputs --features fisher --trials 100 --budget 100 \
  --out "$out/replay"
echo "reports: $out/functions.png $out/search/ $out/replay/"
