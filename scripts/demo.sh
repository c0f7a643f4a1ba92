#!/usr/bin/env bash
# The main job on built-in data. Runs inside the nox "demo" session (./dev demo).
set -euo pipefail
out=${1:-out}
mkdir -p "$out"
act ops | tail -n 1
echo "== functions in binary(unary(x),unary(x)) =="
act space count 'binary(unary(x),unary(x))'
echo "== equivalence classes =="
act space count --unique 'binary(unary(x),unary(x))'
act fn plot 'relu(x)' 'swish(x)' 'max(relu(x),cosh(elu(x)))' 'sum_n(abs(x),swish(x),sigmoid(x))' -o "$out/functions.png"
echo "plot written to $out/functions.png"
