"""A streamed, real-sized Amazon-Reviews-2023 category: ``acmmg sample --profile electronics``.

``pipeline.sample`` writes the small demo category from Python lists; this module writes a
category shaped like a real dump at any size (``scale`` 1 = the real Electronics counts:
18.3 M users, 1.6 M items, ~44 M reviews) without holding it in memory: users are drawn in
fixed chunks with vectorised numpy sampling, each chunk becomes one gzip member of the review
file (concatenated members are one valid gzip stream), and items are written the same way in
item chunks. Chunks are pure functions of (profile, scale, seed, chunk index), so the bytes do
not depend on how many worker processes made them.

The shape (calibrated so that the default build, >= 3 co-buyers and the 5-core, gives about
the reference Electronics graph of 98 k nodes / 2.0 M edges at scale 1 and proportionally
less below; bench/README.md has the measured sizes):

- items per user: a truncated Zipf law solved for a mean of 2.4 (~70% of users review one
  item), with a power-user tail up to ``max_items_per_user``;
- items sit in the 104 leaves of a realistic taxonomy (paths of 3 to 6 names under
  "Electronics", unequal leaf sizes) and, inside a leaf, in shopping communities of about
  ``community_size`` items with a lognormal popularity per item; a user with at most
  ``interest_max`` items buys mostly in one home community, some in a nearby community of the
  same department and the rest by popularity over the catalogue (Zipf-like item popularity);
  a power user's purchases are spread evenly over the catalogue;
- every weight is per item or per community of a fixed size, so a community at a given
  popularity quantile has the same buyers at every scale and the 5-core grows about linearly.

Images: only items that can reach the build's ``k``-core are rendered, ``images/<asin>.jpg``.
While the reviews are written, the pairs each non-power user bought are counted (spilled to
disk by hash partition, so memory stays bounded); the candidates are the ``k``-core of the
pairs with >= ``min_copurchase`` - 1 such co-buyers, which leaves room for one power-user
co-buyer per edge (a power user's items are spread evenly, so two on one pair are rare: no
5-core node went without an image at scales 0.0005 to 0.1). Other items' MAIN image URLs are
valid URLs of files that are not there (404; the image stage never asks, as such an item never
reaches it); placeholder items share ``images/no-image.jpg``; the items' further gallery
images, thumbnails and review images are never rendered (the pipeline takes the MAIN image's
hi_res, then large).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import gzip
import itertools
import json
import math
import multiprocessing
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import sample_electronics as vocab
from pipeline.errors import UserError
from pipeline.graph import GraphParams
from pipeline.io import atomic_path, read_json, write_json
from pipeline.sample import SampleSpec, _add_line_defects

# Independent random streams of one run: [seed, stream, chunk].
_LAYOUT, _PURCHASES, _REVIEWS, _ITEMS = 0, 1, 2, 3
_ASIN_SPACE = 36**8  # "B0" + 8 base-36 characters, as real ASINs
_ASIN_MULT = 2_654_435_761  # odd and not a multiple of 3: a bijection of the ASIN space
_ALNUM = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_BASE32 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
_GZIP_LEVEL = 1  # 3x faster than 6; synthetic text still compresses better than real text
# Rating shares of Amazon reviews (1 to 5 stars): mostly 5, a second mode at 1.
_RATING_P = np.array([0.10, 0.06, 0.08, 0.15, 0.61])
_T_END_MS = 1_694_000_000_000  # Sept 2023, the end of the 2023 crawl
_T0_MS = 946_684_800_000  # 2000
_YEAR_MS = 31_557_600_000
PLACEHOLDER = "no-image.jpg"
_N_BRANDS = 4_000


@dataclass(frozen=True)
class ProfileSpec:
    """The shape of a profile category; counts are those of ``scale`` 1. The community
    parameters are calibrated so that the default build (>= 3 co-buyers, 5-core) gives about
    the reference Electronics graph at scale 1 and proportionally less below (bench/README.md).
    """

    category: str = vocab.ROOT
    users: int = 18_300_000
    items: int = 1_600_000
    mean_items_per_user: float = 2.4
    max_items_per_user: int = 500  # the power-user tail ends here
    community_size: int = 80
    community_sigma: float = 3.0  # lognormal spread of community popularity
    item_zipf: float = 0.2  # popularity rank exponent inside a community
    leaf_zipf: float = 0.7  # unequal leaf classes
    brand_zipf: float = 1.1
    home_share: float = 0.85  # purchases from the user's home community
    sibling_share: float = 0.08  # from a nearby community of the same department
    neighbours: int = 2  # nearby = up to this many communities away
    # Users with more items than this are power users: their purchases are spread evenly over
    # the catalogue, as heavy reviewers' are, so they add pair instances but few edges.
    interest_max: int = 16
    variant_share: float = 0.3  # reviews naming a child asin beside the parent_asin
    review_image_share: float = 0.04
    # Review text: 1 + lognormal(mu, sigma) sentences (median ~3.5, mean ~5.5, up to 60).
    text_mu: float = 0.9
    text_sigma: float = 1.0
    chunk_users: int = 16_384
    chunk_items: int = 8_192
    # Defect rates (duplicate and malformed review lines, item defects): the demo's.
    defects: SampleSpec = dataclasses.field(default_factory=SampleSpec)


PROFILES: dict[str, ProfileSpec] = {"electronics": ProfileSpec()}


@dataclass(frozen=True)
class _Leaf:
    path: tuple[str, ...]  # category path, ROOT first
    nouns: tuple[str, ...]


def _leaves(tree: dict, prefix: tuple[str, ...]) -> Iterator[_Leaf]:
    for name, sub in tree.items():
        if isinstance(sub, dict):
            yield from _leaves(sub, (*prefix, name))
        else:
            yield _Leaf((*prefix, name), tuple(sub.split("|")))


LEAVES: tuple[_Leaf, ...] = tuple(_leaves(vocab.TREE, (vocab.ROOT,)))
NOUNS: tuple[str, ...] = tuple(sorted({n for leaf in LEAVES for n in leaf.nouns}))
MIN_ITEMS = 2 * len(LEAVES)


def _zipf(n: int, s: float) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float64) ** -s


def _degree_cdf(mean: float, cap: int) -> np.ndarray:
    """CDF over 1..cap of the truncated Zipf law whose mean is ``mean`` (exponent by bisection)."""
    d = np.arange(1, cap + 1, dtype=np.float64)
    lo, hi = 1.01, 6.0
    for _ in range(80):
        a = (lo + hi) / 2
        p = d**-a
        p /= p.sum()
        lo, hi = (a, hi) if (p * d).sum() > mean else (lo, a)
    return np.cumsum(p)


def _split_evenly(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer sizes >= 1 summing to ``total``, proportional to ``weights`` (largest remainder)."""
    raw = weights / weights.sum() * (total - len(weights))
    sizes = np.floor(raw).astype(np.int64)
    rest = total - len(weights) - sizes.sum()
    sizes[np.argsort(-(raw - sizes), kind="stable")[:rest]] += 1
    return sizes + 1


class Model:
    """The per-item arrays of one (profile, scale, seed): leaves, communities, popularity.

    A few numpy arrays of catalogue length (~60 MB at scale 1); users are never stored.
    """

    def __init__(self, spec: ProfileSpec, scale: float, seed: int) -> None:
        self.spec, self.scale, self.seed = spec, scale, seed
        self.n_users = max(1, round(spec.users * scale))
        self.n_items = round(spec.items * scale)
        if self.n_items < MIN_ITEMS:
            raise UserError(
                f"--scale {scale} makes {self.n_items} items; the smallest scale with "
                f"{MIN_ITEMS} items is {MIN_ITEMS / spec.items:g}"
            )
        rng = np.random.default_rng([seed, _LAYOUT])
        leaf_sizes = _split_evenly(
            self.n_items, rng.permutation(_zipf(len(LEAVES), spec.leaf_zipf))
        )
        self.leaf_of_item = np.repeat(np.arange(len(LEAVES), dtype=np.int32), leaf_sizes)
        # Communities: each leaf cut into near-equal runs of about community_size items.
        starts, sizes, comm_leaf = [], [], []
        offset = 0
        for leaf, size in enumerate(leaf_sizes.tolist()):
            n = math.ceil(size / spec.community_size)
            parts = _split_evenly(size, np.ones(n)) if n > 1 else np.array([size])
            starts.append(offset + np.concatenate([[0], np.cumsum(parts)[:-1]]))
            sizes.append(parts)
            comm_leaf.append(np.full(n, leaf))
            offset += size
        self.comm_start = np.concatenate(starts).astype(np.int64)
        self.comm_size = np.concatenate(sizes).astype(np.int64)
        comm_leaf = np.concatenate(comm_leaf)
        self.gmax = int(self.comm_size.max())
        n_comm = len(self.comm_start)
        # Departments (first level under the root) own contiguous runs of communities.
        dept_names = sorted({leaf.path[1] for leaf in LEAVES}, key=list(vocab.TREE).index)
        leaf_dept = np.array([dept_names.index(leaf.path[1]) for leaf in LEAVES])
        self.comm_dept = leaf_dept[comm_leaf]
        # Popularity per item is scale-free: a small leaf's community is not denser.
        comm_w = self.comm_size * rng.lognormal(0.0, spec.community_sigma, n_comm)
        self.comm_cum = np.cumsum(comm_w)
        ids = np.arange(len(dept_names))
        self.dept_first = np.searchsorted(self.comm_dept, ids, side="left")
        self.dept_last = np.searchsorted(self.comm_dept, ids, side="right")
        self.pos_w = _zipf(self.gmax, spec.item_zipf)
        comm_of_item = np.repeat(np.arange(n_comm), self.comm_size)
        pos = np.arange(self.n_items) - self.comm_start[comm_of_item]
        within = self.pos_w[pos] / np.cumsum(self.pos_w)[self.comm_size - 1][comm_of_item]
        self.item_cum = np.cumsum(comm_w[comm_of_item] * within)
        # The power-user tail, kept below 1/64 of the catalogue: in a small catalogue a
        # 500-item user would buy a good part of it, and their catalogue-wide purchases
        # would co-occur often enough to make random edges (at scale >= 0.02 the cap is the
        # profile's).
        self.max_degree = max(
            2 * spec.interest_max, min(spec.max_items_per_user, self.n_items // 64)
        )
        self.deg_cdf = _degree_cdf(spec.mean_items_per_user, self.max_degree)
        # What each item is (its titles and reviews name it): a noun of its leaf, an adjective.
        width = max(len(leaf.nouns) for leaf in LEAVES)
        leaf_nouns = np.array(
            [
                [NOUNS.index(leaf.nouns[j % len(leaf.nouns)]) for j in range(width)]
                for leaf in LEAVES
            ]
        )
        n_nouns = np.array([len(leaf.nouns) for leaf in LEAVES])[self.leaf_of_item]
        pick = (rng.random(self.n_items) * n_nouns).astype(np.int64)
        self.item_noun = leaf_nouns[self.leaf_of_item, pick].astype(np.int16)
        self.item_adj = rng.integers(0, len(vocab.ADJECTIVES), self.n_items).astype(np.int16)
        syl = vocab.BRAND_SYLLABLES
        parts = rng.integers(0, len(syl), (_N_BRANDS, 3)).tolist()
        three = (rng.random(_N_BRANDS) < 0.3).tolist()
        self.brands = [
            (syl[a] + syl[b] + (syl[c] if t else "")).capitalize()
            for (a, b, c), t in zip(parts, three, strict=True)
        ]
        self.brand_cum = np.cumsum(_zipf(_N_BRANDS, spec.brand_zipf)).tolist()
        self.n_user_chunks = math.ceil(self.n_users / spec.chunk_users)
        self.n_item_chunks = math.ceil(self.n_items / spec.chunk_items)

    # -- ids -------------------------------------------------------------------------------

    def asins(self, idx: np.ndarray) -> list[str]:
        """ "B0" + 8 base-36 characters: a seeded bijection of the item index (variants use
        indices past n_items)."""
        offset = int(_mix(np.array([self.seed], dtype=np.uint64), 1)[0]) % _ASIN_SPACE
        code = (idx.astype(np.int64) * _ASIN_MULT + offset) % _ASIN_SPACE
        digits = np.empty((len(idx), 10), dtype=np.uint8)
        digits[:, 0], digits[:, 1] = ord("B"), ord("0")
        for j in range(9, 1, -1):
            digits[:, j] = _ALNUM[code % 36]
            code //= 36
        return digits.view("S10").ravel().astype(str).tolist()

    def user_ids(self, idx: np.ndarray) -> list[str]:
        """28-character upper-case ids like the 2023 dumps' ("A" + 27 base-32 characters)."""
        out = np.empty((len(idx), 28), dtype=np.uint8)
        out[:, 0] = ord("A")
        for part in range(3):
            h = _mix(idx.astype(np.uint64) * np.uint64(3) + np.uint64(part), self.seed)
            for j in range(9):
                out[:, 1 + part * 9 + j] = _BASE32[(h & np.uint64(31)).astype(np.intp)]
                h >>= np.uint64(5)
        return out.view("S28").ravel().astype(str).tolist()

    # -- purchases -------------------------------------------------------------------------

    def chunk_users(self, chunk: int) -> np.ndarray:
        lo = chunk * self.spec.chunk_users
        return np.arange(lo, min(lo + self.spec.chunk_users, self.n_users), dtype=np.int64)

    def purchases(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct (user, item) purchases of one user chunk, sorted by user then item,
        and whether each is an interest purchase (not a power user's)."""
        spec = self.spec
        users = self.chunk_users(chunk)
        n = len(users)
        rng = np.random.default_rng([self.seed, _PURCHASES, chunk])
        deg = np.searchsorted(self.deg_cdf, rng.random(n) * self.deg_cdf[-1]) + 1
        home = np.searchsorted(self.comm_cum, rng.random(n) * self.comm_cum[-1], side="right")
        focus = np.where(deg <= spec.interest_max, deg, 0)
        n_home = np.minimum(rng.binomial(focus, spec.home_share), self.comm_size[home])
        sib_p = spec.sibling_share / (1 - spec.home_share)
        # The second interest: one of the nearby communities of the same department (a
        # camera community's tripods and lenses), so cross-community links do not thin out
        # as the catalogue grows.
        step = rng.integers(1, spec.neighbours + 1, n) * rng.choice([-1, 1], n)
        dept = self.comm_dept[home]
        lo, hi = self.dept_first[dept], self.dept_last[dept]
        sib = lo + (home - lo + step) % (hi - lo)
        n_sib = np.minimum(rng.binomial(focus - n_home, sib_p), self.comm_size[sib])
        u_home, i_home = self._in_community(rng, home, n_home)
        u_sib, i_sib = self._in_community(rng, sib, n_sib)
        # The rest of a user's purchases by popularity; a power user's all evenly.
        n_pop = focus - n_home - n_sib
        u_pop = np.repeat(np.arange(n), n_pop)
        i_pop = np.searchsorted(
            self.item_cum, rng.random(len(u_pop)) * self.item_cum[-1], side="right"
        )
        u_wide = np.repeat(np.arange(n), deg - focus)
        i_wide = rng.integers(0, self.n_items, len(u_wide))
        u = np.concatenate([u_home, u_sib, u_pop, u_wide]).astype(np.int64)
        i = np.minimum(np.concatenate([i_home, i_sib, i_pop, i_wide]), self.n_items - 1)
        key = np.unique(u * self.n_items + i)  # distinct (user, item), sorted
        local = key // self.n_items
        return users[local], key % self.n_items, focus[local] > 0

    def _in_community(
        self, rng: np.random.Generator, comm: np.ndarray, k: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """k[r] items drawn without replacement from community comm[r], by popularity
        (Efraimidis-Spirakis keys); returns (row, item) arrays."""
        rows = np.flatnonzero(k)
        size, kk = self.comm_size[comm[rows]], k[rows]
        width = int(size.max()) if len(rows) else 0
        keys = np.log1p(-rng.random((len(rows), width))) / self.pos_w[:width]
        keys[np.arange(width) >= size[:, None]] = -np.inf
        # Only the top kmax keys of a row matter: partition, then order those few.
        kmax = int(kk.max()) if len(rows) else 0
        if kmax < width:
            top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
        else:
            top = np.broadcast_to(np.arange(width), keys.shape)
        order = np.take_along_axis(
            top, np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable"), axis=1
        )
        take = np.arange(kmax) < kk[:, None]
        items = (self.comm_start[comm[rows]][:, None] + order)[take]
        return np.repeat(rows, kk), items


def _mix(x: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit hash of each value (with the seed)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


# -- review lines ------------------------------------------------------------------------------

_SENTIMENTS = ("bad", "mixed", "good")
_SENTIMENT_OF_RATING = np.array([0, 0, 0, 1, 2, 2])  # index = stars
_POOL = 16  # sentences per (item kind, sentiment): the vocabulary's lists cycled to this


def _word(noun: str) -> str:
    # "Mouse" -> "mouse", but "SSD", "TV" and "eReader" keep their capitals.
    return noun.lower() if noun[1:] == noun[1:].lower() else noun


@functools.cache
def _sentences(noun: int, adj: int) -> tuple[tuple[str, ...], ...]:
    """Review sentences about one kind of item, per sentiment (already JSON-escaped)."""
    n, a = _word(NOUNS[noun]), vocab.ADJECTIVES[adj].lower()
    return tuple(
        tuple(
            t.format(noun=n, adj=a)
            for t in itertools.islice(itertools.cycle(vocab.REVIEW_SENTENCES[s]), _POOL)
        )
        for s in _SENTIMENTS
    )


@dataclass
class _Job:
    """What a worker process needs: the model and where the output goes."""

    model: Model
    out: Path
    base_url: str
    images: bool
    resume_images: bool


@dataclass
class _ReviewChunk:
    data: bytes  # one gzip member
    items: np.ndarray  # the item of every distinct purchase
    pairs: np.ndarray  # interest co-purchase pairs, i * n_items + j with i < j
    reviews: int
    duplicate_lines: int
    malformed_lines: int


def review_chunk(job: _Job, chunk: int) -> _ReviewChunk:
    """The review lines of one user chunk as a gzip member, and what the images need."""
    m, spec = job.model, job.model.spec
    users, items, interest = m.purchases(chunk)
    n = len(users)
    rng = np.random.default_rng([m.seed, _REVIEWS, chunk])
    stars = rng.choice(5, n, p=_RATING_P) + 1
    sentiment, rating = _SENTIMENT_OF_RATING[stars], stars.tolist()
    # Text length is heavy-tailed: a sentence or two for most, essays for a few.
    n_sent = np.minimum(
        1 + np.floor(rng.lognormal(spec.text_mu, spec.text_sigma, n)).astype(np.int64), 60
    )
    off = np.concatenate([[0], np.cumsum(n_sent)]).tolist()
    pick = rng.integers(0, _POOL, off[-1]).tolist()
    title_pick = rng.integers(0, 1 << 20, n).tolist()
    age = (rng.exponential(3.0, n) * _YEAR_MS).astype(np.int64)
    ts = np.maximum(_T_END_MS - age, _T0_MS).tolist()
    helpful = np.minimum(rng.zipf(2.0, n) - 1, 5_000).tolist()
    verified = (rng.random(n) < 0.9).tolist()
    variant = rng.random(n) < spec.variant_share
    child = m.n_items + items * 4 + rng.integers(0, 4, n)
    with_images = (rng.random(n) < spec.review_image_share).tolist()
    ulist, upos = np.unique(users, return_inverse=True)
    uids = m.user_ids(ulist)
    parents = m.asins(items)
    asins = m.asins(np.where(variant, child, items))
    nouns, adjs = m.item_noun[items].tolist(), m.item_adj[items].tolist()
    titles = [vocab.REVIEW_TITLES[s] for s in _SENTIMENTS]
    img_base = f"{job.base_url}/review_images"
    lines = []
    for r, (s, u) in enumerate(zip(sentiment.tolist(), upos.tolist(), strict=True)):
        pool = _sentences(nouns[r], adjs[r])[s]
        text = " ".join([pool[j] for j in pick[off[r] : off[r + 1]]])
        uid = uids[u]
        images = (
            f'[{{"small_image_url": "{img_base}/{uid}_{r}._SL256_.jpg", '
            f'"medium_image_url": "{img_base}/{uid}_{r}._SL800_.jpg", '
            f'"large_image_url": "{img_base}/{uid}_{r}.jpg", "attachment_type": "IMAGE"}}]'
            if with_images[r]
            else "[]"
        )
        lines.append(
            f'{{"rating": {rating[r]}.0, "title": "{titles[s][title_pick[r] % len(titles[s])]}", '
            f'"text": "{text}", "images": {images}, "asin": "{asins[r]}", '
            f'"parent_asin": "{parents[r]}", "user_id": "{uid}", "timestamp": {ts[r]}, '
            f'"helpful_vote": {helpful[r]}, "verified_purchase": {"true" if verified[r] else "false"}}}'
        )
    lines, planted = _add_line_defects(lines, spec.defects, rng)
    return _ReviewChunk(
        data=_gzip_member(lines),
        items=items.astype(np.int32),
        pairs=_interest_pairs(users, items, interest, m.n_items),
        reviews=n,
        duplicate_lines=planted["duplicate_lines"],
        malformed_lines=planted["malformed_lines"],
    )


def _gzip_member(lines: list[str]) -> bytes:
    # mtime 0 and no file name: the same lines always give the same bytes.
    return gzip.compress(("\n".join(lines) + "\n").encode(), _GZIP_LEVEL, mtime=0)


def _interest_pairs(
    users: np.ndarray, items: np.ndarray, interest: np.ndarray, n_items: int
) -> np.ndarray:
    """Codes i * n_items + j (i < j) of the item pairs each user bought out of interest."""
    u, i = users[interest], items[interest]  # still sorted by user, then item
    _, start, deg = np.unique(u, return_index=True, return_counts=True)
    start, deg = start[deg >= 2], deg[deg >= 2]
    parts = [np.zeros(0, dtype=np.int64)]
    top = int(deg.max(initial=0))
    for a in range(top):
        for b in range(a + 1, top):
            s = start[deg > b]
            parts.append(i[s + a].astype(np.int64) * n_items + i[s + b])
    return np.concatenate(parts)


# -- which items can be in the k-core ---------------------------------------------------------


class _PairSpill:
    """Interest pair codes spilled to ``parts`` hash partitions on disk and counted one
    partition at a time, so memory stays bounded at any scale."""

    def __init__(self, folder: Path, parts: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = [folder / f"pairs-{p}.i64" for p in range(parts)]
        self.files = [open(p, "wb") for p in self.paths]  # noqa: SIM115 - closed in close()

    def add(self, codes: np.ndarray) -> None:
        part = codes % len(self.files)
        for p, f in enumerate(self.files):
            codes[part == p].tofile(f)

    def frequent(self, min_count: int) -> np.ndarray:
        """The codes seen at least ``min_count`` times, all partitions together."""
        self.close()
        kept = [np.zeros(0, dtype=np.int64)]
        for path in self.paths:
            codes, counts = np.unique(np.fromfile(path, dtype=np.int64), return_counts=True)
            kept.append(codes[counts >= min_count])
            path.unlink()
        return np.concatenate(kept)

    def close(self) -> None:
        for f in self.files:
            f.close()


def core_candidates(codes: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """Items of the k-core of the graph of the given pair codes (a boolean mask)."""
    i, j = codes // n_items, codes % n_items
    while True:
        deg = np.bincount(i, minlength=n_items) + np.bincount(j, minlength=n_items)
        ok = (deg[i] >= k) & (deg[j] >= k)
        if ok.all():
            break
        i, j = i[ok], j[ok]
    mask = np.zeros(n_items, dtype=bool)
    mask[i], mask[j] = True, True
    return mask


# -- metadata lines and images ----------------------------------------------------------------

_DEFECTS = ("no_title", "no_description", "no_image", "placeholder", "broken_image")
_MONTHS = (
    "January February March April May June July August September October November December"
).split()


@dataclass
class _MetaChunk:
    data: bytes  # one gzip member
    images: int  # items of the chunk with a rendered image
    defects: dict[str, int]


def meta_chunk(job: _Job, chunk: int, candidate: np.ndarray, reviews: np.ndarray) -> _MetaChunk:
    """The metadata lines of one item chunk as a gzip member; renders the images of its
    ``candidate`` items (those that can reach the k-core). ``reviews``: review counts."""
    m, spec = job.model, job.model.spec
    lo = chunk * spec.chunk_items
    idx = np.arange(lo, min(lo + spec.chunk_items, m.n_items))
    r = random.Random((m.seed << 32) + chunk)
    rates = list(itertools.accumulate(getattr(spec.defects, f"{d}_rate") for d in _DEFECTS))
    asins = m.asins(idx)
    lines, images, defects = [], 0, dict.fromkeys(_DEFECTS, 0)
    for pos, i in enumerate(idx.tolist()):
        u = r.random()
        defect = next((d for d, edge in zip(_DEFECTS, rates, strict=True) if u < edge), None)
        if defect:
            defects[defect] += 1
        asin, leaf = asins[pos], LEAVES[m.leaf_of_item[i]]
        rec = _meta_record(job, r, i, asin, leaf, defect, int(reviews[pos]))
        lines.append(json.dumps(rec))
        if job.images and candidate[pos] and defect is None:
            _render(job, asin, leaf.path[2], rec["title"])
            images += 1
    return _MetaChunk(_gzip_member(lines), images, defects)


def _meta_record(
    job: _Job, r: random.Random, i: int, asin: str, leaf: _Leaf, defect: str | None, n_rev: int
) -> dict:
    """One item's metadata, field for field in the 2023 dumps' order."""
    m = job.model
    noun, adj = NOUNS[m.item_noun[i]], vocab.ADJECTIVES[m.item_adj[i]]
    brand = m.brands[bisect.bisect(m.brand_cum, r.random() * m.brand_cum[-1])]
    model_no = (
        f"{r.choice('ABCDEFGHJKLMNPRSTUVWXZ')}{r.choice('ABCDEFGHKMNPRSTX')}{r.randint(10, 9999)}"
    )
    feature, use, color = (
        r.choice(vocab.FEATURE_PHRASES),
        r.choice(vocab.USES),
        r.choice(vocab.COLORS),
    )
    extra = f"{r.choice(vocab.ADJECTIVES)} " if r.random() < 0.4 else ""
    title = (
        f"{brand} {adj} {extra}{noun} {model_no}, {feature}, {use} - {color}"
        if r.random() < 0.7
        else f"{brand} {noun} {model_no} - {color}"
    )
    words = {
        "adj": adj.upper(),
        "adj_l": adj.lower(),
        "noun": noun,
        "noun_l": _word(noun),
        "use_l": use.lower(),
        "feature": feature.upper(),
        "feature_l": feature.lower(),
        "brand": brand,
        "leaf_l": leaf.path[-1].lower(),
        "title": title,
    }
    start = r.randrange(len(vocab.FEATURE_LINES))
    features = [
        vocab.FEATURE_LINES[(start + k) % len(vocab.FEATURE_LINES)].format(**words)
        for k in range(r.randint(4, 7))
    ]
    description = (
        []
        if r.random() < 0.35
        else [line.format(**words) for line in r.sample(vocab.DESCRIPTION_LINES, r.randint(1, 3))]
    )
    if defect == "no_description":
        features, description = [], []
    first_available = r.randint(_T0_MS, _T_END_MS) // 1000
    date = time.gmtime(first_available)
    return {
        "main_category": vocab.MAIN_CATEGORY,
        "title": "" if defect == "no_title" else title,
        "average_rating": round(min(5.0, max(1.0, r.gauss(4.2, 0.5))), 1),
        "rating_number": n_rev * r.randint(1, 4) + r.randint(0, 20),
        "features": features,
        "description": description,
        "price": None if r.random() < 0.35 else round(math.exp(r.gauss(3.2, 1.0)), 2),
        "images": [] if defect == "no_image" else _gallery(job.base_url, asin, defect, r),
        "videos": (
            [
                {
                    "title": f"{brand} {noun} review",
                    "url": f"{job.base_url}/videos/{asin}.mp4",
                    "user_id": "",
                }
            ]
            if r.random() < 0.08
            else []
        ),
        "store": brand,
        "categories": list(leaf.path),
        "details": {
            "Brand": brand,
            "Item model number": model_no,
            "Color": color,
            "Item Weight": f"{r.randint(1, 400) / 10} ounces",
            "Product Dimensions": " x ".join(f"{r.randint(5, 300) / 10}" for _ in range(3))
            + " inches",
            "Date First Available": f"{_MONTHS[date.tm_mon - 1]} {date.tm_mday}, {date.tm_year}",
            "Manufacturer": brand,
            "Best Sellers Rank": {
                vocab.ROOT: r.randint(1, 2_000_000),
                leaf.path[-1]: r.randint(1, 50_000),
            },
            "Is Discontinued By Manufacturer": "No",
        },
        "parent_asin": asin,
        "bought_together": None,
    }


def _gallery(base_url: str, asin: str, defect: str | None, r: random.Random) -> list[dict]:
    """The MAIN image (the one the pipeline fetches) and 2-7 more that are never rendered."""
    main = f"{base_url}/images/{PLACEHOLDER if defect == 'placeholder' else asin + '.jpg'}"
    out = [
        {
            "thumb": f"{base_url}/images/{asin}._SS40_.jpg",
            "large": main,
            "variant": "MAIN",
            "hi_res": main if r.random() < 0.6 else None,
        }
    ]
    for k in range(1, r.randint(3, 8)):
        url = f"{base_url}/images/{asin}.PT{k:02d}"
        out.append(
            {
                "thumb": f"{url}._SS40_.jpg",
                "large": f"{url}.jpg",
                "variant": f"PT{k:02d}",
                "hi_res": f"{url}._SL1500_.jpg" if r.random() < 0.6 else None,
            }
        )
    return out


def _render(job: _Job, asin: str, class_name: str, title: str) -> None:
    from pipeline.sample_images import render_item_image

    path = job.out / "images" / f"{asin}.jpg"
    if job.resume_images and path.exists():
        return  # written atomically by an earlier run of the same recipe
    data, _ = render_item_image(asin, class_name, title, job.model.seed)
    # A .jpg name over whatever format the renderer chose, as CDNs serve WebP behind .jpg.
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# -- the run ----------------------------------------------------------------------------------

_WORKER_JOB: _Job | None = None


def _init_worker(spec: ProfileSpec, scale: float, seed: int, *rest) -> None:
    global _WORKER_JOB
    _WORKER_JOB = _Job(Model(spec, scale, seed), *rest)


def _review_task(chunk: int) -> _ReviewChunk:
    return review_chunk(_WORKER_JOB, chunk)


def _meta_task(args: tuple) -> _MetaChunk:
    return meta_chunk(_WORKER_JOB, *args)


@contextlib.contextmanager
def _runner(job_args: tuple, workers: int) -> Iterator:
    """An ordered ``map(task, args)``: in this process, or over ``workers`` processes (each
    chunk is a pure function of its index, so the bytes do not depend on which)."""
    global _WORKER_JOB
    if workers <= 1:
        _init_worker(*job_args)
        try:
            yield map
        finally:
            _WORKER_JOB = None
        return
    # spawn, not fork: the caller may be running threads (Prefect, a test server).
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, job_args) as pool:
        yield functools.partial(pool.imap, chunksize=1)


def generate_profile(
    out: Path,
    profile: str = "electronics",
    scale: float = 0.01,
    seed: int = 0,
    base_url: str = "http://127.0.0.1:8765",
    images: bool = True,
    workers: int = 1,
    min_copurchase: int = GraphParams.min_copurchase,
    k: int = GraphParams.k,
) -> dict:
    """Write ``<Category>.jsonl.gz``, ``meta_<Category>.jsonl.gz`` and ``images/`` to ``out``.

    ``scale`` 1 is the real category's size. Image URLs are ``{base_url}/images/...``; serve
    ``out`` there. ``min_copurchase`` and ``k`` are the build's thresholds the images are
    rendered for. A rerun of the same (profile, scale, seed) keeps the images already there.
    Returns a summary (counts, paths).
    """
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; known: {', '.join(sorted(PROFILES))}")
    if not scale > 0:
        raise UserError(f"--scale must be > 0, not {scale}")
    spec = PROFILES[profile]
    model = Model(spec, scale, seed)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    recipe = {"profile": profile, "scale": scale, "seed": seed, "spec": repr(spec)}
    recipe_path = out / "images" / ".recipe.json"
    resume = recipe_path.exists() and read_json(recipe_path) == recipe
    recipe_path.unlink(missing_ok=True)
    job_args = (spec, scale, seed, out, base_url.rstrip("/"), images, resume)
    reviews_path = out / f"{spec.category}.jsonl.gz"
    meta_path = out / f"meta_{spec.category}.jsonl.gz"
    summary: dict = {
        "profile": profile,
        "scale": scale,
        "seed": seed,
        "reviews": str(reviews_path),
        "meta": str(meta_path),
        "users": model.n_users,
        "items": model.n_items,
        "reviews_written": 0,
        "duplicate_lines": 0,
        "malformed_lines": 0,
    }
    reviews = np.zeros(model.n_items, dtype=np.int64)
    with _runner(job_args, workers) as run:
        spill = _PairSpill(out / ".sample_pairs", max(1, math.ceil(scale * 16)))
        try:
            with atomic_path(reviews_path) as tmp, open(tmp, "wb") as f:
                for res in run(_review_task, range(model.n_user_chunks)):
                    f.write(res.data)
                    spill.add(res.pairs)
                    reviews += np.bincount(res.items, minlength=model.n_items)
                    summary["reviews_written"] += res.reviews
                    summary["duplicate_lines"] += res.duplicate_lines
                    summary["malformed_lines"] += res.malformed_lines
            # An edge of the build needs min_copurchase co-buyers; all but one of them buying
            # out of interest leaves room for a power user's catalogue-wide purchase.
            codes = spill.frequent(max(1, min_copurchase - 1))
        finally:
            spill.close()
            shutil.rmtree(out / ".sample_pairs", ignore_errors=True)
        candidate = core_candidates(codes, model.n_items, k)
        summary["image_candidates"] = int(candidate.sum())
        if images:
            from pipeline.sample_images import render_placeholder

            with atomic_path(out / "images" / PLACEHOLDER) as tmp:
                tmp.write_bytes(render_placeholder())
        size = spec.chunk_items
        tasks = (
            (c, candidate[c * size : (c + 1) * size], reviews[c * size : (c + 1) * size])
            for c in range(model.n_item_chunks)
        )
        rendered, defects = 0, dict.fromkeys(_DEFECTS, 0)
        with atomic_path(meta_path) as tmp, open(tmp, "wb") as f:
            for res in run(_meta_task, tasks):
                f.write(res.data)
                rendered += res.images
                for name, n in res.defects.items():
                    defects[name] += n
    summary["images_rendered"] = rendered
    summary.update({f"items_{name}": n for name, n in defects.items()})
    summary["reviews_bytes"] = reviews_path.stat().st_size
    summary["meta_bytes"] = meta_path.stat().st_size
    if images:
        write_json(recipe_path, recipe)
    return summary
