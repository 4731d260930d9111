#!/usr/bin/env bash
# The trainer on a real GPU: SFT (with generation eval), DPO, KTO and GRPO on the tiny model, with the GPU
# defaults (bf16 where supported, gradient checkpointing), plus the pre-flight's CUDA branch.
#
#   scripts/gpu_check.sh prepare          # here (CPU): convert sample_data, the KTO and RL examples, a tiny model -> .gpu/
#   scripts/gpu_check.sh run [OUTDIR]     # on the GPU machine: train each on .gpu/, reports and logs -> OUTDIR
#
# `run` uses the python3 on the PATH; packages the GPU machine lacks travel as wheels in .whl/ (installed to
# /tmp/site first when that folder exists). The README's "What ran on a GPU" quotes its output.
set -uo pipefail
cd "$(dirname "$0")/.."
step=${1:-run}
D=.gpu

if [ "$step" = prepare ]; then
    PY=${PYTHON:-python}
    rm -rf "$D" && mkdir -p "$D"
    $PY -m audiodata convert sample_data -o "$D/sample" --overwrite --val-ratio 0.2 >/dev/null || [ $? -eq 1 ] || exit 1
    $PY -m audiodata convert examples/rl/language_mcq.json --media-root sample_data/audio -o "$D/rl" >/dev/null || exit 1
    $PY -m audiodata make-tiny-model -o "$D/tiny" >/dev/null || exit 1
    $PY -m audiodata make-tiny-model -o "$D/tiny-omni" --model-family qwen2.5-omni >/dev/null || exit 1
    $PY - "$D" <<'EOF' || exit 1
import json, sys
from pathlib import Path

import audiodata

d = Path(sys.argv[1])
clips = sorted(Path("sample_data/audio").glob("clip0[7-9]_16k.flac"))
rows = [
    {
        "prompt": [{"role": "user", "content": "<audio>Say what you hear."}],
        "completion": [{"role": "assistant", "content": f"Reply number {i} " + "la " * (i % 5)}],
        "label": i % 2 == 0,
        "audios": [str(clips[i % len(clips)].resolve())],
    }
    for i in range(12)
]
(d / "kto.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
assert audiodata.convert([str(d / "kto.jsonl")], d / "kto", num_workers=1).records_written == 12
EOF
    du -sh "$D"
    exit 0
fi

OUT=${2:-${OUT:-gpu-out}}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
R=/tmp/gpu-runs
rm -rf "$R"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c 'import torch, transformers, trl, peft, datasets, pyarrow; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported()); print("transformers", transformers.__version__, "trl", trl.__version__, "peft", peft.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__)'
} 2>&1 | tee "$OUT/log.txt"
status=0
run() {  # name, then the audiodata arguments
    local name=$1; shift
    echo "=== $name: audiodata $*" | tee -a "$OUT/log.txt"
    local t0=$SECONDS
    python3 -m audiodata "$@" >>"$OUT/log.txt" 2>&1
    local rc=$?
    echo "=== $name rc=$rc in $((SECONDS - t0)) s" | tee -a "$OUT/log.txt"
    [ $rc -eq 0 ] || status=1
}
run preflight train sft --model $D/tiny --data $D/sample -o $R/dry --dry-run --json
run sft train sft --model $D/tiny --data $D/sample -o $R/sft --max-steps 20 --learning-rate 0.01 --logging-steps 1 \
    --eval-split validation --eval-steps 10 --max-new-tokens 16
run dpo train dpo --model $D/tiny --data $D/sample -o $R/dpo --max-steps 20 --per-device-batch-size 2 --logging-steps 1 \
    --learning-rate 5e-3
run kto train kto --model $D/tiny --data $D/kto -o $R/kto --max-steps 10 --per-device-batch-size 2 --logging-steps 1 \
    --learning-rate 5e-3
run grpo train grpo --model $D/tiny --data $D/rl -o $R/grpo --max-steps 24 --per-device-batch-size 32 --num-generations 16 \
    --max-completion-length 16 --learning-rate 0.02 --beta 0 --logging-steps 1 --rewards mcq_letter,format --reward-weights 1,0.5
run sft-omni train sft --model $D/tiny-omni --data $D/sample -o $R/sft-omni --max-steps 10 --learning-rate 0.01 --logging-steps 1
run grpo-omni train grpo --model $D/tiny-omni --data $D/rl -o $R/grpo-omni --max-steps 8 --per-device-batch-size 16 \
    --num-generations 8 --max-completion-length 16 --learning-rate 0.02 --logging-steps 1 --rewards mcq_letter,format
[ -f $R/sft/eval.html ] && cp $R/sft/eval.html "$OUT/eval.html"
[ -f $R/grpo/rl.html ] && cp $R/grpo/rl.html "$OUT/rl.html"
python3 - "$R" "$OUT" <<'EOF' | tee -a "$OUT/log.txt"
import json, sys
from pathlib import Path

reports = {p.parent.name: json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("*/train_report.json"))}
(Path(sys.argv[2]) / "reports.json").write_text(json.dumps(reports, indent=1))
for name, r in reports.items():
    losses = [h.get("loss") for h in r.get("loss_history", []) if h.get("loss") is not None]
    print(name, "precision", r.get("precision"), "steps", r.get("steps"), "loss first/last",
          losses[:1], losses[-1:], "reward first/last", r.get("reward_first"), r.get("reward_last"),
          "runtime_s", r.get("runtime_s"))
EOF
exit $status
