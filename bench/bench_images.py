"""Image fetch + normalise throughput: ``acmmg images`` against img2dataset, side by side.

Both download the same generated images from the same local HTTP server (a separate process,
threaded, HTTP/1.1) and shrink them with the same settings: longer side at most 512 px (never
enlarged), JPEG quality 95, 2 processes. Each tool runs as a subprocess; its wall time from
start to exit (imports included) gives images/s. Runs alternate between the tools; medians
are reported.

    .venv/bin/python bench/bench_images.py [--n 2000] [--repeats 3]
    .venv/bin/python bench/bench_images.py --memory [--repeats 3]

``--memory``: peak RSS of one process whose 16 threads normalise 16 6300x6300 PNGs at once,
with the default budget of decoded pixels in flight (``max_pixels_in_flight``) against none.

img2dataset lives in its own venv (heavy, conflicting pins): by default
.cache/bench-venv (``python -m venv .cache/bench-venv && .cache/bench-venv/bin/pip install
img2dataset==1.47.0``). The images are generated once into .cache/bench-images-<n>/:
product-like pictures with photo-like texture, long side ~800 px (300-1500), aspect
0.75-1.33, 98% JPEG q90, 2% PNG, ~180 kB on average (359 MB for 2000).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["Speakers", "Headphones", "Cables", "Chargers", "Cameras", "Keyboards", "Mice", "Lamps"]
WORDS = ["Wireless", "Portable", "Premium", "Compact", "Ergonomic", "Bluetooth", "Rechargeable"]


def _spec(i: int) -> tuple[str, str, str, tuple[int, int], str]:
    rng = random.Random(i)
    long_side = int(min(1500, max(300, rng.gauss(800, 250))))
    aspect = rng.uniform(0.75, 1.33)
    size = (
        (long_side, int(long_side / aspect))
        if aspect >= 1
        else (int(long_side * aspect), long_side)
    )
    cls = CLASSES[i % len(CLASSES)]
    fmt = "png" if i % 50 == 7 else "jpg"
    return f"B{i:09d}", cls, f"{rng.choice(WORDS)} {cls[:-1]}", size, fmt


def _render(i: int, out: str) -> int:
    from pipeline.sample_images import render_item_image

    asin, cls, title, size, fmt = _spec(i)
    data, ext = render_item_image(asin, cls, title, size=size, fmt=fmt, quality=90, noise=0.35)
    Path(out, f"{asin}.{ext}").write_bytes(data)
    return len(data)


def generate(n: int) -> Path:
    """The benchmark images (cached: generated once per n)."""
    out = ROOT / ".cache" / f"bench-images-{n}"
    done = out / "DONE"
    if done.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    with ProcessPoolExecutor(os.cpu_count()) as ex:
        sizes = list(ex.map(functools.partial(_render, out=str(out)), range(n), chunksize=16))
    done.write_text(json.dumps({"n": n, "bytes": sum(sizes)}))
    print(f"generated {n} images, {sum(sizes) / 1e6:.0f} MB in {time.time() - t:.0f}s", flush=True)
    return out


def serve(directory: str, port: int) -> None:
    """The image server (run in its own process so it does not share a GIL with a tool)."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK stall every keep-alive response by ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    http.server.ThreadingHTTPServer.daemon_threads = True
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(Handler, directory=directory)
    )
    httpd.request_queue_size = 256
    httpd.serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 10) -> None:
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("image server did not start")


def _timed(cmd: list[str], **kwargs) -> tuple[float, float]:
    """Run ``cmd``; (wall seconds, CPU seconds of it and all its waited-for descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, **kwargs)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run_acmmg(
    urls: list[tuple[str, str]], tmp: Path, args: argparse.Namespace, resample: str
) -> tuple[float, float, int, dict[str, tuple[int, int]]]:
    import polars as pl

    work = tmp / "acmmg-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    asins = [a for a, _ in urls]
    pl.DataFrame({"asin": asins, "degree": [5] * len(asins)}).write_parquet(work / "nodes.parquet")
    pl.DataFrame({"asin": asins, "image_url": [u for _, u in urls]}).write_parquet(
        work / "items.parquet"
    )
    cmd = [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "pipeline.cli",
        "images",
        "--work",
        str(work),
        "--max-side",
        str(args.size),
        "--jpeg-quality",
        str(args.quality),
        "--processes",
        str(args.processes),
        "--resample",
        resample,
        "--threads",
        str(args.threads),
        "--allow-private",
        "127.0.0.1/32",
        "--min-side",
        "1",
        "--placeholder-threshold",
        "1000000",
        "--progress",
        "off",
    ]
    wall, cpu = _timed(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    ok = json.loads((work / "stats.json").read_text())["images"]["ok"]
    rows = pl.read_parquet(work / "images.parquet").filter(pl.col("status") == "ok")
    sizes = {r["url"]: (r["width"], r["height"]) for r in rows.iter_rows(named=True)}
    return wall, cpu, ok, sizes


def run_img2dataset(
    urls: list[tuple[str, str]], tmp: Path, args: argparse.Namespace
) -> tuple[float, float, int, dict[str, tuple[int, int]]]:
    out = tmp / "i2d-out"
    shutil.rmtree(out, ignore_errors=True)
    url_file = tmp / "urls.txt"
    url_file.write_text("".join(u + "\n" for _, u in urls))
    cmd = [
        str(Path(args.img2dataset_venv) / "bin" / "img2dataset"),
        f"--url_list={url_file}",
        f"--output_folder={out}",
        "--input_format=txt",
        "--output_format=files",
        f"--image_size={args.size}",
        # Longer side <= size, never enlarged: the acmmg rule. Downscaling filter: area.
        "--resize_mode=keep_ratio_largest",
        "--resize_only_if_bigger=True",
        f"--encode_quality={args.quality}",
        f"--processes_count={args.processes}",
        f"--thread_count={args.i2d_threads}",
        f"--number_sample_per_shard={max(1, len(urls) // 8)}",
        "--retries=0",
        "--timeout=20",
        "--distributor=multiprocessing",
    ]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}
    wall, cpu = _timed(cmd, env=env, stdout=subprocess.DEVNULL)
    ok = sum(json.loads(p.read_text()).get("successes", 0) for p in out.glob("*_stats.json"))
    sizes = {}
    for p in out.glob("*/*.json"):
        meta = json.loads(p.read_text())
        if meta.get("status") == "success":
            sizes[meta["url"]] = (meta["width"], meta["height"])
    return wall, cpu, ok, sizes


MEMORY_SIDE = 6300
MEMORY_THREADS = 16


def memory_child(capacity: int) -> None:
    """16 threads normalise a 6300x6300 PNG each, all at once; prints peak RSS and wall."""
    import io
    import threading

    from PIL import Image

    from pipeline.images import ImageConfig, normalize_image
    from pipeline.images.normalize import pixel_budget

    buf = io.BytesIO()
    grad = Image.linear_gradient("L").resize((MEMORY_SIDE, MEMORY_SIDE))
    Image.merge("RGB", (grad, grad.transpose(Image.Transpose.ROTATE_90), grad)).save(buf, "PNG")
    data = buf.getvalue()
    cfg = ImageConfig(max_pixels_in_flight=capacity)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = threading.Barrier(MEMORY_THREADS)
    out: list[int] = []

    def one() -> None:
        start.wait()
        out.append(normalize_image(data, cfg).width)

    t = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(MEMORY_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    assert out == [512] * MEMORY_THREADS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = {"rss_gb": peak / 2**20, "base_gb": base / 2**20, "wall_s": wall}
    print(json.dumps({**res, "peak_pixels": pixel_budget(capacity).peak}))


def bench_memory(repeats: int) -> None:
    from pipeline.images import ImageConfig

    budgets = {"budget (default)": ImageConfig().max_pixels_in_flight, "no budget": 0}
    got: dict[str, list[dict]] = {k: [] for k in budgets}
    for r in range(repeats):
        for name, cap in budgets.items():
            cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(cap)]
            proc = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
            res = json.loads(proc.stdout)
            got[name].append(res)
            print(
                f"run {r + 1} {name:<17} peak RSS {res['rss_gb']:5.2f} GB "
                f"(before decoding {res['base_gb']:4.2f})  {res['wall_s']:5.2f} s",
                flush=True,
            )
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in got.items()}
    ref = med["no budget"]
    print(f"\n{MEMORY_THREADS} threads x {MEMORY_SIDE}x{MEMORY_SIDE} PNG; medians of {repeats}")
    for k, m in med.items():
        print(
            f"  {k:<17} peak RSS {m['rss_gb']:5.2f} GB ({m['rss_gb'] / ref['rss_gb']:4.2f}x)  "
            f"wall {m['wall_s']:5.2f} s ({m['wall_s'] / ref['wall_s']:4.2f}x)  "
            + (
                f"pixels in flight at most {m['peak_pixels'] / 1e6:.0f} M"
                if m["peak_pixels"]
                else ""
            )
        )


def ensure_img2dataset(venv: Path) -> None:
    """Create the img2dataset venv on first use (it pins packages the main env must not get)."""
    if (venv / "bin" / "img2dataset").exists():
        return
    print(f"installing img2dataset==1.47.0 into {venv} (first run only)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "img2dataset==1.47.0"]
    subprocess.run(pip, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="number of images")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--quality", type=int, default=95)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument(
        "--resample",
        nargs="+",
        default=["hamming", "box"],
        help="acmmg filters to run: hamming is its default, box = area (img2dataset's filter)",
    )
    ap.add_argument("--threads", type=int, default=16, help="acmmg threads per process")
    ap.add_argument("--i2d-threads", type=int, default=32, help="img2dataset threads per process")
    ap.add_argument("--img2dataset-venv", type=Path, default=ROOT / ".cache" / "bench-venv")
    ap.add_argument("--no-img2dataset", action="store_true", help="run acmmg only")
    ap.add_argument("--memory", action="store_true", help="pixel budget: peak RSS, see above")
    ap.add_argument("--serve", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.memory_child is not None:
        memory_child(args.memory_child)
        return
    if args.memory:
        bench_memory(args.repeats)
        return
    tools: dict[str, functools.partial] = {}
    if not args.no_img2dataset:
        ensure_img2dataset(args.img2dataset_venv)
        tools["img2dataset"] = functools.partial(run_img2dataset, args=args)
    for r in args.resample:
        tools[f"acmmg[{r}]"] = functools.partial(run_acmmg, args=args, resample=r)
    images = generate(args.n)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(images), str(port)]
    )
    times: dict[str, list[float]] = {k: [] for k in tools}
    cpus: dict[str, list[float]] = {k: [] for k in tools}
    sizes: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        _wait_port(port)
        base = f"http://127.0.0.1:{port}"
        files = sorted(p.name for p in images.iterdir() if p.suffix in (".jpg", ".png"))
        urls = [(Path(f).stem, f"{base}/{f}") for f in files]
        # Outputs go under .cache, not /tmp: file creation in /tmp was measured ~20x slower
        # on this machine kind, and both tools write a file or more per image.
        (ROOT / ".cache").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="bench-run-", dir=ROOT / ".cache") as d:
            for r in range(args.repeats):
                for name, fn in tools.items():
                    wall, cpu, ok, sizes[name] = fn(urls, tmp=Path(d))
                    times[name].append(wall)
                    cpus[name].append(cpu)
                    print(
                        f"run {r + 1} {name:<16} {wall:6.2f}s  {len(urls) / wall:6.1f} img/s"
                        f"  {1000 * cpu / len(urls):5.2f} ms CPU/img  ({ok}/{len(urls)} ok)",
                        flush=True,
                    )
    finally:
        server.terminate()
        server.wait()
    rates = {k: len(urls) / statistics.median(v) for k, v in times.items()}
    print(
        f"\n{len(urls)} images, longer side <= {args.size} (never enlarged), JPEG "
        f"q{args.quality}, {args.processes} processes; medians of {args.repeats} runs"
    )
    base_rate = rates.get("img2dataset")
    for k, v in rates.items():
        cpu_ms = 1000 * statistics.median(cpus[k]) / len(urls)
        ratio = f"  {v / base_rate:4.2f}x img2dataset" if base_rate and k != "img2dataset" else ""
        print(f"  {k:<16} {v:6.1f} img/s  {cpu_ms:5.2f} ms CPU/img (server excluded){ratio}")
    if "img2dataset" in sizes:
        # Same settings => same output sizes (to a pixel of rounding).
        theirs = sizes["img2dataset"]
        for k, ours in sizes.items():
            if k == "img2dataset":
                continue
            common = [u for u in ours if u in theirs]
            same = sum(
                abs(ours[u][0] - theirs[u][0]) <= 1 and abs(ours[u][1] - theirs[u][1]) <= 1
                for u in common
            )
            print(f"  output sizes {k} vs img2dataset: {same}/{len(common)} equal (+-1 px)")


if __name__ == "__main__":
    main()
