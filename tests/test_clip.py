"""CLIP stage: real open_clip code with the random-weight tiny config "acmmg-tiny"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from pipeline import clip, workdir
from pipeline.cli import main
from pipeline.clip import EmbedParams
from pipeline.clip import encode as clip_encode
from pipeline.clip import stage as clip_stage
from pipeline.clip import text as clip_text
from pipeline.runner import run_stage
from pipeline.stages import EMBED
from pipeline.stats import merged
from tests.clip_fixtures import asin, random_edges, write_graph, write_images, write_items

TINY = {"model": clip.TINY_MODEL, "pretrained": None, "device": "cpu"}
N = 40
NO_ITEM = {asin(3), asin(17)}
BAD_IMAGE = {asin(5): "placeholder", asin(11): "placeholder", asin(23): "failed"}


def make_inputs(work: Path) -> None:
    edges = random_edges(N, 0.5, seed=1)
    write_graph(work, edges)
    nodes = pl.read_parquet(work / workdir.NODES)["asin"].to_list()
    assert len(nodes) == N
    write_items(work, [a for a in nodes if a not in NO_ITEM])
    write_images(work, nodes, status=BAD_IMAGE)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("clip_inputs")
    make_inputs(work)
    return work


@pytest.fixture(scope="module")
def embedded(inputs, tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("clip_embedded") / "w"
    shutil.copytree(inputs, work)
    stats = clip.embed_work(
        work, EmbedParams(**TINY, precision="fp32", batch_size=8, num_workers=2)
    )
    return work, stats


@pytest.fixture(scope="module")
def tiny() -> clip.ClipModel:
    return clip.load_model(clip.TINY_MODEL, None, device="cpu", precision="fp32")


def store_path(work: Path, a: str) -> Path:
    img = pl.read_parquet(work / workdir.IMAGES).filter(pl.col("asin") == a)
    return workdir.image_store_path(work, img["sha256"][0])


def test_tiny_model_is_registered_and_has_card_shapes(tiny, inputs):
    assert clip.TINY_MODEL in __import__("open_clip").list_models()
    assert tiny.embed_dim == 512 and tiny.model_id["context_length"] == 77
    assert tiny.model_id["random_weights_seed"] == 0 and tiny.model_id["pretrained"] is None
    paths = [store_path(inputs, asin(i)) for i in (0, 1, 2)]
    img, ok = clip.encode_images(tiny, paths, batch_size=2, num_workers=0)
    assert img.shape == (3, 512) and img.dtype == np.float32 and ok.all()
    # Longer than the context: truncated by the tokenizer, not an error.
    texts = ["red speaker", "", "word " * 500]
    txt = clip.encode_texts(tiny, texts, batch_size=2)
    assert txt.shape == (3, 512) and txt.dtype == np.float32
    for arr in (img, txt):
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)
    # Truncation: anything past 77 tokens does not change the embedding.
    more = clip.encode_texts(tiny, ["word " * 500 + "extra tail words"], batch_size=1)
    np.testing.assert_array_equal(more[0], txt[2])


def test_random_model_is_deterministic_and_leaves_global_rng_alone(tiny, inputs):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    other = clip.load_model(clip.TINY_MODEL, None, device="cpu", precision="fp32")
    assert torch.equal(torch.rand(1), before)  # load_model forks the RNG
    paths = [store_path(inputs, asin(i)) for i in (0, 1)]
    a, _ = clip.encode_images(tiny, paths, batch_size=2, num_workers=0)
    b, _ = clip.encode_images(other, paths, batch_size=2, num_workers=0)
    np.testing.assert_array_equal(a, b)
    ta = clip.encode_texts(tiny, ["blue mug"])
    tb = clip.encode_texts(other, ["blue mug"])
    np.testing.assert_array_equal(ta, tb)
    seeded = clip.load_model(clip.TINY_MODEL, None, device="cpu", precision="fp32", seed=1)
    assert not np.allclose(clip.encode_texts(seeded, ["blue mug"]), ta)


def test_random_models_loaded_in_threads_at_once_are_the_same(tiny):
    """Shard tasks on a thread pool load their models concurrently; the seeded random
    weights must not interleave through torch's process-wide RNG."""
    from concurrent.futures import ThreadPoolExecutor

    def load(_):
        m = clip.load_model(clip.TINY_MODEL, None, device="cpu", precision="fp32")
        return m.model.state_dict()

    with ThreadPoolExecutor(4) as pool:
        states = list(pool.map(load, range(4)))
    reference = tiny.model.state_dict()
    for state in states:
        assert all(torch.equal(state[k], reference[k]) for k in reference)


TEXTS = [
    "Red speaker model 1",
    "",
    "A blue mug. Item number 4 of the test set, with a handle and a lid.",
    "word " * 500,  # past the context: truncated, EOT at the last position
    "green lamp",
    "Red speaker model 1",  # a duplicate
    "usb c cable " * 6,
]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cutting_the_padded_tail_is_bit_identical(tiny, precision):
    """Causal mask + EOT pooling: nothing after a row's EOT reaches its pooled feature, so a
    batch cut to its longest row gives exactly open_clip's full-context encode_text."""
    cm = tiny
    if precision == "bf16":
        cm = clip.load_model(clip.TINY_MODEL, None, device="cpu", precision="bf16")
    tokens = cm.tokenizer(TEXTS[:3] + TEXTS[4:5] + TEXTS[6:])  # all shorter than the context
    pooled = clip_text.pool_index(cm.model, tokens)
    assert torch.equal(pooled, tokens.argmax(-1))
    n = clip_text.cut_length(int(pooled.max()) + 1, tokens.shape[1])
    assert n < tokens.shape[1]
    with torch.no_grad():
        full = cm.model.encode_text(tokens)
        for cut in (n, n + clip_text.CUT_MULTIPLE, tokens.shape[1]):
            assert torch.equal(clip_text.encode_cut_tokens(cm.model, tokens[:, :cut]), full)


def test_encode_texts_dedups_sorts_and_maps_back(tiny):
    got = clip.encode_texts(tiny, TEXTS, batch_size=2)
    np.testing.assert_array_equal(got[0], got[5])  # a duplicate is encoded once
    # Each row is its own text's embedding, whatever the order and batching.
    with torch.no_grad():
        for i, t in enumerate(TEXTS):
            want = tiny.model.encode_text(tiny.tokenizer([t])).float()
            want = torch.nn.functional.normalize(want, dim=-1).numpy()[0]
            np.testing.assert_allclose(got[i], want, atol=1e-5)
    # The batches are a function of the set of rows: a shuffled input gives the same bytes.
    perm = [3, 6, 0, 2, 5, 1, 4]
    np.testing.assert_array_equal(clip.encode_texts(tiny, [TEXTS[i] for i in perm], 2), got[perm])
    assert clip.encode_texts(tiny, [], 2).shape == (0, 512)


def test_clip_t_formula_matches_direct_cosine():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 16)).astype(np.float32)
    b = rng.normal(size=(50, 16)).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    direct = [
        100 * float(x @ y) / (np.linalg.norm(x) * np.linalg.norm(y))
        for x, y in zip(a64, b64, strict=True)
    ]
    np.testing.assert_allclose(clip.clip_t(a, b), direct, rtol=1e-9, atol=1e-9)
    torch_cos = 100 * torch.nn.functional.cosine_similarity(torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(clip.clip_t(a, b), torch_cos.numpy(), atol=1e-4)
    assert clip.clip_t(a[:1], a[:1])[0] == pytest.approx(100.0)
    with pytest.raises(ValueError):
        clip.clip_t(a, b[:3])


def test_embed_work_outputs(embedded, tiny):
    work, stats = embedded
    out = work / workdir.CLIP_DIR
    index = pl.read_parquet(out / "index.parquet")
    scores = pl.read_parquet(out / "scores.parquet")
    skipped = NO_ITEM | set(BAD_IMAGE)
    assert stats["candidates"] == N and stats["embedded"] == N - len(skipped)
    assert stats["skipped_no_item"] == 2 and stats["skipped_image_not_ok"] == 3
    assert stats["image_decode_failed"] == 0
    assert index.schema == {"asin": pl.String, "row": pl.Int64}
    assert index["asin"].to_list() == sorted(index["asin"]) and not set(index["asin"]) & skipped
    assert index["row"].to_list() == list(range(index.height))
    assert scores.schema == {
        "asin": pl.String,
        "clip_t_title": pl.Float64,
        "clip_t_desc": pl.Float64,
    }
    assert scores["asin"].to_list() == index["asin"].to_list()
    emb = {k: np.load(out / f"{k}.npy") for k in clip.KINDS}
    for arr in emb.values():
        assert arr.shape == (index.height, 512) and arr.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)
    # CLIP-T in scores.parquet = 100 x cosine of the stored image and text rows.
    np.testing.assert_allclose(
        scores["clip_t_title"].to_numpy(), 100 * np.sum(emb["image"] * emb["title"], 1), atol=1e-4
    )
    np.testing.assert_allclose(
        scores["clip_t_desc"].to_numpy(),
        100 * np.sum(emb["image"] * emb["description"], 1),
        atol=1e-4,
    )
    # Row alignment: the row of an asin is that item's image and texts, encoded on their own.
    items = pl.read_parquet(work / workdir.ITEMS_CLEAN)
    for a in (asin(0), asin(29)):
        row = index.filter(pl.col("asin") == a)["row"][0]
        item = items.filter(pl.col("asin") == a).row(0, named=True)
        img, _ = clip.encode_images(tiny, [store_path(work, a)], 1, 0)
        np.testing.assert_allclose(emb["image"][row], img[0], atol=1e-5)
        desc = " ".join(item["description"])
        want = clip.encode_texts(tiny, [item["title"], desc, f"{item['title']} {desc}"])
        np.testing.assert_allclose(emb["title"][row], want[0], atol=1e-5)
        np.testing.assert_allclose(emb["description"][row], want[1], atol=1e-5)
        np.testing.assert_allclose(emb["combined"][row], want[2], atol=1e-5)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["model"]["model"] == clip.TINY_MODEL and meta["model"]["precision"] == "fp32"
    assert not (out / ".parts").exists()
    assert stats["embedded"] == index.height


def test_rerun_reuses_and_fresh_run_is_byte_identical(embedded, inputs, tmp_path):
    work, _ = embedded
    out = work / workdir.CLIP_DIR
    files = ["index.parquet", "scores.parquet", "meta.json"] + [f"{k}.npy" for k in clip.KINDS]
    before = {f: (out / f).read_bytes() for f in files}
    mtimes = {f: (out / f).stat().st_mtime_ns for f in files}
    p = EmbedParams(**TINY, precision="fp32", batch_size=8, num_workers=2)
    run_stage(EMBED, work, p)
    mtimes = {f: (out / f).stat().st_mtime_ns for f in files}
    again, cached = run_stage(EMBED, work, p)  # the stage's stamp: nothing recomputed
    assert cached and again == merged(work)["clip"]
    assert {f: (out / f).stat().st_mtime_ns for f in files} == mtimes
    fresh = tmp_path / "w"
    shutil.copytree(inputs, fresh)
    clip.embed_work(fresh, EmbedParams(**TINY, precision="fp32", batch_size=8, num_workers=0))
    for f in files:
        assert (fresh / workdir.CLIP_DIR / f).read_bytes() == before[f], f
    # Another model setting is not reused.
    _, cached = run_stage(
        EMBED, fresh, EmbedParams(**TINY, precision="fp32", batch_size=8, weights_seed=1)
    )
    assert not cached


def test_interrupted_run_resumes_from_finished_parts(inputs, tmp_path, monkeypatch):
    work = tmp_path / "w"
    shutil.copytree(inputs, work)
    monkeypatch.setattr(clip_stage, "PART_ROWS", 8)
    real = clip.encode_images
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(clip_encode, "encode_images", failing)
    with pytest.raises(KeyboardInterrupt):
        clip.embed_work(work, EmbedParams(**TINY, precision="fp32", batch_size=4, num_workers=0))
    parts = list((work / workdir.CLIP_DIR / ".parts").glob("*/image_*.npy"))
    assert len(parts) == 2 and not (work / workdir.CLIP_DIR / "meta.json").exists()

    calls.clear()
    monkeypatch.setattr(
        clip_encode, "encode_images", lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    )
    stats = clip.embed_work(
        work, EmbedParams(**TINY, precision="fp32", batch_size=4, num_workers=0)
    )
    n_parts = -(-stats["embedded"] // 8)
    assert len(calls) == n_parts - 2
    monkeypatch.setattr(clip_encode, "encode_images", real)
    clean = tmp_path / "clean"
    shutil.copytree(inputs, clean)
    clip.embed_work(clean, EmbedParams(**TINY, precision="fp32", batch_size=4, num_workers=0))
    for k in clip.KINDS:
        np.testing.assert_array_equal(
            np.load(work / workdir.CLIP_DIR / f"{k}.npy"),
            np.load(clean / workdir.CLIP_DIR / f"{k}.npy"),
        )


def test_undecodable_image_is_counted_and_left_out(inputs, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(inputs, work)
    store_path(work, asin(7)).write_bytes(b"not a jpeg at all")
    stats = clip.embed_work(
        work, EmbedParams(**TINY, precision="fp32", batch_size=8, num_workers=0)
    )
    assert stats["image_decode_failed"] == 1
    index = pl.read_parquet(work / workdir.CLIP_DIR / "index.parquet")
    assert asin(7) not in index["asin"].to_list()
    assert np.load(work / workdir.CLIP_DIR / "image.npy").shape[0] == index.height
    assert np.isfinite(np.load(work / workdir.CLIP_DIR / "image.npy")).all()


def test_bf16_on_cpu_stays_close_to_fp32(tiny, inputs):
    dev = torch.device("cpu")
    auto = clip.resolve_precision("auto", dev)
    assert auto == ("bf16" if clip.cpu_has_native_bf16() else "fp32")
    bf16 = clip.load_model(clip.TINY_MODEL, None, device="cpu", precision="bf16")
    paths = [store_path(inputs, asin(i)) for i in (0, 1, 2, 4, 6, 7)]
    texts = ["Red speaker model 1", "A blue mug. Item number 4 of the test set."]
    a, _ = clip.encode_images(tiny, paths, 6, 0)
    b, _ = clip.encode_images(bf16, paths, 6, 0)
    assert np.sum(a * b, 1).min() > 0.999
    ta, tb = clip.encode_texts(tiny, texts), clip.encode_texts(bf16, texts)
    assert np.sum(ta * tb, 1).min() > 0.999
    with pytest.raises(ValueError):
        clip.resolve_precision("amp-fp16", dev)


def test_openvino_runtime_stays_close_to_fp32_and_reloads_the_same(inputs, tmp_path):
    # In a process of its own: OpenVINO after DataLoader decode workers in one process was
    # seen to corrupt the heap (a segfault in a later test), so it is opt-in (runtime).
    import subprocess
    import sys

    code = "import sys; from pathlib import Path; from tests.test_clip import _openvino_body; "
    code += "_openvino_body(Path(sys.argv[1]), Path(sys.argv[2]))"
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", code, str(inputs), str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def _openvino_body(inputs: Path, tmp_path: Path) -> None:
    tiny = clip.load_model(clip.TINY_MODEL, None, device="cpu", precision="fp32")
    cpu = torch.device("cpu")
    assert clip.resolve_runtime("auto", cpu, "bf16") == "openvino"
    assert clip.resolve_runtime("auto", cpu, "fp32") == "torch"  # torch's fp32: the reference
    assert clip.resolve_runtime("auto", torch.device("cuda"), "amp-fp16") == "torch"
    with pytest.raises(ValueError, match="runtime openvino"):
        clip.resolve_runtime("openvino", cpu, "amp-bf16")
    cache = tmp_path / "ov"
    env = pytest.MonkeyPatch()
    env.setenv("ACMMG_OPENVINO_CACHE", str(cache))
    env.setenv("CI", "true")  # OpenVINO's converter sends no telemetry then
    try:
        ov = clip.load_model(
            clip.TINY_MODEL, None, device="cpu", precision="bf16", runtime="openvino"
        )
        assert ov.runtime == "openvino" and ov.model_id["openvino"] and len(list(cache.iterdir()))
        paths = [store_path(inputs, asin(i)) for i in (0, 1, 2, 4, 6, 7)]
        a, _ = clip.encode_images(tiny, paths, 4, 0)
        b, ok = clip.encode_images(ov, paths, 4, 0)
        ta, tb = clip.encode_texts(tiny, TEXTS, 3), clip.encode_texts(ov, TEXTS, 3)
        assert ok.all() and np.sum(a * b, 1).min() > 0.999 and np.sum(ta * tb, 1).min() > 0.999
        assert np.abs(clip.clip_t(a, ta[:6]) - clip.clip_t(b, tb[:6])).max() < 0.15
        # Loaded again, now from the cache of converted models: the same bytes.
        again = clip.load_model(
            clip.TINY_MODEL, None, device="cpu", precision="bf16", runtime="openvino"
        )
        np.testing.assert_array_equal(clip.encode_texts(again, TEXTS, 3), tb)
        np.testing.assert_array_equal(clip.encode_images(again, paths, 4, 0)[0], b)
    finally:
        env.undo()


def test_bad_model_arguments_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown open_clip model"):
        clip.load_model("no-such-model", None, device="cpu")
    with pytest.raises(ValueError, match="unknown pretrained tag"):
        clip.load_model(clip.TINY_MODEL, "openai", device="cpu")
    with pytest.raises(FileNotFoundError):
        clip.load_model(checkpoint=tmp_path / "missing.pt", device="cpu")


def test_local_checkpoint_file_is_loaded(tiny, tmp_path):
    # A checkpoint on disk, as a user with downloaded weights would pass with --checkpoint.
    seeded = clip.load_model(clip.TINY_MODEL, None, device="cpu", precision="fp32", seed=5)
    ckpt = tmp_path / "tiny.pt"
    torch.save(seeded.model.state_dict(), ckpt)
    loaded = clip.load_model(clip.TINY_MODEL, checkpoint=ckpt, device="cpu", precision="fp32")
    assert loaded.model_id["checkpoint_sha256"] and loaded.model_id["random_weights_seed"] is None
    np.testing.assert_array_equal(
        clip.encode_texts(loaded, ["green lamp"]), clip.encode_texts(seeded, ["green lamp"])
    )
    assert not np.allclose(
        clip.encode_texts(tiny, ["green lamp"]), clip.encode_texts(loaded, ["green lamp"])
    )
    # An open_clip model folder (the layout of an HF Hub snapshot) carries its own config.
    folder = tmp_path / "snapshot"
    folder.mkdir()
    cfg = json.loads((clip.MODEL_CONFIG_DIR / f"{clip.TINY_MODEL}.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    save_file(
        {k: v.contiguous() for k, v in seeded.model.state_dict().items()},
        folder / "open_clip_model.safetensors",
    )
    from_dir = clip.load_model(checkpoint=folder, device="cpu", precision="fp32")
    assert from_dir.model_id["model"].startswith("local-dir:")
    np.testing.assert_array_equal(
        clip.encode_texts(from_dir, ["green lamp"]), clip.encode_texts(seeded, ["green lamp"])
    )
    (folder / "pytorch_model.bin").write_bytes(b"other format, not used")
    again = clip.load_model(checkpoint=folder, device="cpu", precision="fp32")
    assert again.model_id["checkpoint_sha256"] == from_dir.model_id["checkpoint_sha256"]


def test_cli_embed_runs_the_filter_and_reports(inputs, tmp_path, capsys):
    work = tmp_path / "w"
    shutil.copytree(inputs, work)
    rc = main(
        ["embed", "--work", str(work), "--model", clip.TINY_MODEL, "--pretrained", "none",
         "--device", "cpu", "--batch-size", "16", "--num-workers", "0",
         "--clip-t-percentile", "10", "--min-clip-t", "none"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert f"embed: {N - 5} of {N} nodes embedded" in out
    assert "nodes filtered by CLIP-T" in out and "filter: fixpoint after" in out
    final = pl.read_parquet(work / workdir.FINAL_DIR / "nodes.parquet")
    assert final.height > 0 and final["degree"].min() >= 5
    fstats = json.loads((work / workdir.FINAL_DIR / "filter_stats.json").read_text())
    assert fstats["params"]["clip_t_percentile"] == 10
    assert fstats["removed_by_clip_t"] > 0
    rc = main(
        ["filter", "--work", str(work), "--min-clip-t", "-100", "--clip-t-percentile", "none"]
    )
    assert rc == 0 and "0 nodes filtered by CLIP-T" in capsys.readouterr().out


def test_cli_errors_are_clean(tmp_path, capsys):
    rc = main(
        ["embed", "--work", str(tmp_path), "--model", clip.TINY_MODEL, "--pretrained", "none"]
    )
    assert rc == 2 and "missing input" in capsys.readouterr().err
    rc = main(["filter", "--work", str(tmp_path), "--clip-t-percentile", "150"])
    assert rc == 2 and "clip_t_percentile" in capsys.readouterr().err


def test_sharded_parts_then_assembly_equal_one_plain_run(inputs, tmp_path, monkeypatch):
    """What the Dask runner does: n shard calls, then one plain call that assembles."""
    monkeypatch.setattr(clip, "PART_ROWS", 8)
    plain, sharded = tmp_path / "plain", tmp_path / "sharded"
    shutil.copytree(inputs, plain)
    shutil.copytree(inputs, sharded)
    clip.embed_work(plain, EmbedParams(**TINY, precision="fp32", batch_size=4, num_workers=0))
    for i in range(3):
        out = clip.embed_work(
            sharded,
            EmbedParams(**TINY, precision="fp32", batch_size=4, num_workers=0),
            shard=(i, 3),
        )
        assert out["shard"] == [i, 3]
        assert not (sharded / workdir.CLIP_DIR / "meta.json").exists()
    calls = []
    real = clip.encode_images
    monkeypatch.setattr(
        clip_encode, "encode_images", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    clip.embed_work(sharded, EmbedParams(**TINY, precision="fp32", batch_size=4, num_workers=0))
    assert not calls  # every part was done by a shard
    files = ["index.parquet", "scores.parquet"] + [f"{k}.npy" for k in clip.KINDS]
    for f in files:
        a = (plain / workdir.CLIP_DIR / f).read_bytes()
        assert a == (sharded / workdir.CLIP_DIR / f).read_bytes(), f
