"""Feed act the bad input of the fault review and count how each answer looks.

    python scripts/probe_bad_input.py            # with the act packages importable

Every probe is a command line (run as ``python -m actcore.cli ...``) or a snippet of
Python API use, run in a fresh process. An answer is "clear" when the process exits 2
with a one-line ``act: error:`` (or raises ActError, for the API), "traceback" when a
Python traceback escapes, "accepted" when the bad input runs as if it were good, and
"hang" past two minutes. The probes of :data:`VALID` are good input that act used to fail
on; for them "ok" (exit 0 in time) is the right answer.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

DEEP = "unary(" * 31 + "x" + ")" * 31
SPACE = "binary(unary(x),unary(x))"

CLI = {
    "--device bogus": ["fim", "spectrum", "--model", "mlp", "--activation", "relu(x)",
                       "--input-shape", "64", "--classes", "10", "--device", "bogus"],
    "--device cuda:7": ["bench", "train", "-t", "mlp-digits", "-a", "relu", "--device", "cuda:7"],
    "--checkpoint garbage": ["bench", "train", "-t", "mlp-digits", "-a", "relu", "--epochs", "1",
                             "--checkpoint", "{tmp}/garbage.pt"],
    "replay --jobs -1": ["search", "replay", "--table", "act-bench-digits-mlp", "--jobs", "-1"],
    "replay --seed -1": ["search", "replay", "--table", "act-bench-digits-mlp", "--seed", "-1"],
    "replay --out FILE": ["search", "replay", "--table", "act-bench-digits-mlp", "--trials", "1",
                          "--budget", "9", "--out", "{tmp}/afile"],
    "run --fisher-batch 0": ["search", "run", "--task", "mlp-digits", "--space", SPACE,
                             "--fisher-batch", "0", "--out", "{tmp}/s0"],
    "run --epochs 0": ["search", "run", "--task", "mlp-digits", "--space", SPACE, "--epochs",
                       "0", "--out", "{tmp}/s1"],
    "space sample, 31 levels": ["space", "sample", DEEP, "-n", "2"],
    "space list --limit 2, 31 levels": ["space", "list", DEEP, "--limit", "2"],
    "replay, one-row table": ["search", "replay", "--table", "{tmp}/one.json"],
    "replay, all-NaN table": ["search", "replay", "--table", "{tmp}/nan.json"],
    "replay, accuracies in percent": ["search", "replay", "--table", "{tmp}/percent.json"],
    "embed, one-row table": ["search", "embed", "--table", "{tmp}/one.json"],
    "fn plot -o f.txt": ["fn", "plot", "relu(x)", "-o", "{tmp}/f.txt"],
    "compare --curves c.txt": ["bench", "compare", "-t", "mlp-digits", "-a", "relu",
                               "--curves", "{tmp}/c.txt"],
    "compare -o FILE/box.png": ["bench", "compare", "-t", "mlp-digits", "-a", "relu",
                                "-o", "{tmp}/afile/box.png"],
    "compare --results FILE/runs.jsonl": ["bench", "compare", "-t", "mlp-digits", "-a", "relu",
                                          "--results", "{tmp}/afile/runs.jsonl"],
    "embed -o FILE/e.png": ["search", "embed", "--table", "act-bench-digits-mlp",
                            "-o", "{tmp}/afile/e.png"],
    "embed --cache FILE/c": ["search", "embed", "--table", "act-bench-digits-mlp",
                             "--cache", "{tmp}/afile/c", "-o", "{tmp}/e.png"],
    "fim spectrum --plot s.csv": ["fim", "spectrum", "--model", "mlp", "--activation",
                                  "relu(x)", "--input-shape", "64", "--classes", "10",
                                  "--plot", "{tmp}/s.csv"],
    "fim --dataset digits --input-shape 3,32,32": [
        "fim", "spectrum", "--model", "mlp", "--activation", "relu(x)", "--dataset", "digits",
        "--input-shape", "3,32,32", "--batch-size", "8"],
    "--disable nope": ["--disable", "nope", "ops"],
    "bench build, no data folder": ["bench", "build", "-t", "lenet5-cifar10", "--space",
                                    "unary(x)", "--operators", "relu", "--data-root",
                                    "{tmp}/none", "--out", "{tmp}/t.json"],
    "bench build --fisher-batch 100000": ["bench", "build", "-t", "mlp-digits", "--space",
                                          "unary(x)", "--operators", "relu", "--fisher-batch",
                                          "100000", "--out", "{tmp}/u.json"],
}

VALID = {"space sample, 31 levels", "space list --limit 2, 31 levels"}

API = {
    "kfac_spectrum, wrong input shape":
        "import torch, actfim; from torch import nn\n"
        "actfim.kfac_spectrum(nn.Sequential(nn.Linear(4, 3)), torch.randn(2, 7))",
    "kfac_spectrum, integer inputs":
        "import torch, actfim; from torch import nn\n"
        "actfim.kfac_spectrum(nn.Sequential(nn.Linear(4, 3)), torch.ones(2, 4, dtype=torch.long))",
    "kfac_spectrum, 1-D inputs":
        "import torch, actfim; from torch import nn\n"
        "actfim.kfac_spectrum(nn.Sequential(nn.Linear(4, 3)), torch.randn(4))",
    "kfac_spectrum, not a module":
        "import torch, actfim\nactfim.kfac_spectrum('model', torch.randn(2, 4))",
    "Space(...)['a']": "import actcore\nactcore.Space('unary(x)')['a']",
    "fisher_cdf(None)": "import actfim\nactfim.fisher_cdf(None)",
    "train(seed=1.5)": "import actbench\nactbench.train('mlp-digits', 'relu', seed=1.5)",
    "hull factory returning a non-module":
        "import acthull; from torch import nn\n"
        "acthull.replace_activations(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), lambda: 'relu')",
    "per-channel HullSpec, wrong example_input":
        "import torch, acthull; from torch import nn\n"
        "spec = acthull.HullSpec(kind='affine', bases=['identity', 'relu'],"
        " granularity='channel')\n"
        "acthull.replace_activations(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), spec,"
        " example_input=torch.zeros(1, 5))",
}

API_WRAPPER = """
import sys
from actcore import ActError
try:
{body}
except ActError as err:
    print("act: error:", err, file=sys.stderr)
    sys.exit(2)
"""


def _tables(tmp: Path) -> None:
    import json

    row = {"Train Accuracy": 0.5, "Validation Accuracy": 0.5, "Train Loss": 1,
           "Validation Loss": 1, "Test Accuracy": 0.5, "Test Loss": 1}
    names = ["relu", "tanh", "elu", "selu", "swish", "sigmoid", "softplus", "erf", "abs", "exp"]
    (tmp / "one.json").write_text(json.dumps({"relu(x)": row}))
    (tmp / "nan.json").write_text(json.dumps(
        {f"{n}(x)": {**row, "Validation Accuracy": float("nan")} for n in names}))
    (tmp / "percent.json").write_text(json.dumps(
        {f"{n}(x)": {**row, "Validation Accuracy": 50 + i} for i, n in enumerate(names)}))
    (tmp / "garbage.pt").write_bytes(b"not a checkpoint")
    (tmp / "afile").write_text("")


def classify(label: str, result: subprocess.CompletedProcess) -> str:
    if "Traceback" in result.stderr:
        return "traceback"
    if result.returncode == 2 and "error" in result.stderr:
        return "clear"
    if result.returncode == 0:
        return "ok" if label in VALID else "accepted"
    return f"exit {result.returncode}"


def main() -> int:
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        _tables(tmp)
        probes = [(label, [sys.executable, "-m", "actcore.cli",
                           *(a.format(tmp=tmp) for a in argv)]) for label, argv in CLI.items()]
        probes += [(label, [sys.executable, "-c", API_WRAPPER.format(
            body="\n".join("    " + line for line in code.splitlines()))])
            for label, code in API.items()]
        for label, command in probes:
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                        cwd=tmp)
                verdict = classify(label, result)
            except subprocess.TimeoutExpired:
                verdict = "hang (120 s)"
            counts[verdict] = counts.get(verdict, 0) + 1
            print(f"{verdict:<12} {label}", flush=True)
    print("; ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
