"""REST latency of a served fer_exp model: ``mlflow models serve`` (``--env-manager local``,
one worker) on 127.0.0.1, the median of N requests for 1 image and for a batch of 64.

    python scripts/bench_serving.py                                   # trains a tiny model first
    python scripts/bench_serving.py --model runs:/<id>/model --tracking-uri sqlite:///mlflow.db

The images are the validation faces of the model's own data (the synthetic faces for the tiny
model), sent as PNG files. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import atexit
import io
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer_exp.serving import rest  # noqa: E402


def free_port() -> int:
    """A port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(work: Path) -> tuple[str, str]:
    """A one-epoch run on the synthetic faces in ``work``: (model URI, tracking URI)."""
    from fer_exp.config import compose
    from fer_exp.runs import JobInfo, run

    uri = f"sqlite:///{work}/mlflow.db"
    cfg = compose(["debug=fast", "preview_images=0", f"tracking_uri={uri}"])
    return f"runs:/{run(cfg, JobInfo(output_dir=work / 'out')).run_id}/model", uri


def face_files(n: int) -> list[bytes]:
    """``n`` synthetic validation faces as PNG files."""
    from PIL import Image

    from fer_exp.config import compose
    from fer_exp.data.sources import load_splits

    images = load_splits(compose([]).data).val.images
    files = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(images[i % len(images)][..., 0]).save(buf, format="PNG")
        files.append(buf.getvalue())
    return files


def median_ms(url: str, files: list[bytes], requests: int) -> float:
    """The median wall time of ``requests`` POSTs of ``files``, after two warm-up requests."""
    for _ in range(2):
        rest.invoke(url, files)
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        rest.invoke(url, files)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    """Serve the model, time the requests, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model URI (default: train a tiny model first)")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_serving-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    os.chdir(work)  # a tiny run's store and artifacts stay in the temporary folder
    model, uri = (args.model, args.tracking_uri) if args.model else tiny_model(work)
    files = face_files(64)
    with rest.ModelServer(model, free_port(), uri, work) as server:
        one = median_ms(server.url, files[:1], args.requests)
        batch = median_ms(server.url, files, args.requests)
    print(
        json.dumps(
            {
                "model": model,
                "requests": args.requests,
                "median_ms_1_image": round(one, 2),
                "median_ms_64_images": round(batch, 2),
                "images_per_s_batch_64": round(64 / batch * 1000, 1),
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
