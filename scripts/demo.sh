#!/usr/bin/env bash
# The main job on built-in data. Runs inside the nox "demo" session (./dev demo).
set -euo pipefail
out=${1:-out}
mkdir -p "$out"
echo "== actcore: operators, search spaces, equivalence =="
act ops | tail -n 1
echo "-- functions in binary(unary(x),unary(x)) (SPEC: 5,103)"
act space count 'binary(unary(x),unary(x))'
echo "-- equivalence classes (functions that agree on the fixed 1,000-point sample)"
act space count --unique 'binary(unary(x),unary(x))'
four_node=('binary(unary(unary(x)),unary(x))' 'binary(unary(x),unary(unary(x)))'
  'n-ary(unary(x),unary(x),unary(x))' 'unary(binary(unary(x),unary(x)))'
  'unary(unary(unary(unary(x))))')
echo "-- the four-node union of SPEC.md (1,023,516), counted without enumerating"
act space count "${four_node[@]}"
echo "-- ... and its equivalence classes (about 10 s)"
act space count --unique "${four_node[@]}" | tail -n 1
echo "-- a few class representatives"
act space list 'binary(unary(x),unary(x))' --unique --limit 5
act fn plot 'relu(x)' 'swish(x)' 'max(relu(x),cosh(elu(x)))' 'sum_n(abs(x),swish(x),sigmoid(x))' -o "$out/functions.png"
echo "plot written to $out/functions.png"
