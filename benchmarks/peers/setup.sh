#!/usr/bin/env sh
# Create .venv-peers at the project root with GrowthBook's gbstats 0.8.0 and Spotify's
# spotify-confidence, for benchmarks/compare_peers.py and the gbstats timing in
# benchmarks/stats_engine.py. It is separate from .venv because gbstats 0.8.0 requires numpy<2 and
# pandas<2, which Recall Lab's own dependencies (pandas>=2) exclude: `pip install -e .` into it fails
# with "ResolutionImpossible: recall-lab depends on pandas>=2.0, gbstats 0.8.0 depends on pandas<2.0.0",
# so the project root is put on sys.path with a .pth file instead (nothing is added to pyproject.toml).
#
#   sh benchmarks/peers/setup.sh                       # PYTHON=python3.11 sh benchmarks/peers/setup.sh
#   .venv-peers/bin/python benchmarks/compare_peers.py
#   .venv-peers/bin/python benchmarks/stats_engine.py
#
# Re-running it upgrades the environment in place. Remove it with `rm -rf .venv-peers`.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-python3}
VENV="$ROOT/.venv-peers"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r "$ROOT/benchmarks/peers/requirements.txt"

# The project root on sys.path: `import analysis`, `import experiments` work from any directory.
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$ROOT" > "$SITE/recall_lab_root.pth"

"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import analysis.frequentist, experiments.models  # noqa: F401  (the project root is importable)
import gbstats.gbstats, spotify_confidence  # noqa: F401
print(".venv-peers ready: " + ", ".join(f"{p} {md.version(p)}" for p in
      ("gbstats", "spotify-confidence", "numpy", "pandas", "scipy", "statsmodels")))
PY
