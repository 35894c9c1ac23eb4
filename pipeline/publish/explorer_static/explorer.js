// The ACMMG explorer: plain JavaScript, no library, no network. The data files
// (explorer/meta.js, index.js, nodes_<k>.js, written by pipeline.publish.explorer) call
// ACMMG_EXPLORER.meta / .index / .shard with their JSON. Every text from the data goes
// into the page as text (textContent), never as markup.
"use strict";

window.ACMMG_EXPLORER = (function () {
  const state = { meta: null, index: null, lower: null, shards: {}, waiting: {}, current: -1 };
  const MAX_RESULTS = 50;
  const PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
    "#e6550d", "#31a354", "#756bb1", "#636363",
  ];
  const SVG_NS = "http://www.w3.org/2000/svg";

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  function colour(c) {
    if (c < PALETTE.length) return PALETTE[c];
    return "hsl(" + ((c * 137.508) % 360).toFixed(1) + ", 55%, 45%)";
  }

  function className(c) { return state.meta.classes[c] ?? "class " + c; }

  function chip(c) {
    const node = el("span", { class: "chip", text: className(c), title: className(c) });
    node.style.background = colour(c);
    return node;
  }

  function relationText(r) {
    if (r < 0) return "no relation";
    return state.meta.relations[String(r)] ?? "relation " + r;
  }

  function notice(text) {
    const box = $("notice");
    box.textContent = text;
    box.hidden = false;
  }

  // An <img> of images/<asin>.jpg; a missing file becomes a red mark and one notice.
  function image(asin, alt) {
    const src = "images/" + asin + ".jpg";
    const img = el("img", { src: src, alt: alt, loading: "eager" });
    img.addEventListener("error", () => {
      const mark = el("div", { class: "missing", text: "no image: " + src });
      img.replaceWith(mark);
      notice("Some images are not beside this page (images/<asin>.jpg). In a folder that " +
        "has only images.tar, extract it here first: tar xf images.tar");
    });
    return img;
  }

  function fmtScore(x) { return x === null || x === undefined ? "n/a" : String(x); }

  // ------------------------------------------------------------------ data files

  function loadShard(k) {
    if (state.shards[k]) return Promise.resolve(state.shards[k]);
    if (!state.waiting[k]) {
      state.waiting[k] = new Promise((resolve, reject) => {
        const name = "explorer/nodes_" + String(k).padStart(4, "0") + ".js";
        const tag = el("script", { src: name });
        tag.addEventListener("error", () => reject(new Error("cannot load " + name)));
        tag.addEventListener("load", () => state.shards[k] ? resolve(state.shards[k])
          : reject(new Error(name + " holds no shard")));
        document.head.append(tag);
      });
    }
    return state.waiting[k];
  }

  async function details(node) {
    const shard = await loadShard(Math.floor(node / state.meta.shard_nodes));
    const i = node - shard.start;
    return {
      nbr: shard.nbr[i], reviews: shard.reviews[i], n_reviews: shard.n_reviews[i],
      clip_t: shard.clip_t[i],
    };
  }

  // ------------------------------------------------------------------ search

  function search(query) {
    const q = query.trim().toLowerCase();
    if (!q) return [];
    const idx = state.index;
    if (!state.lower) state.lower = idx.title.map((t) => t.toLowerCase());
    const words = q.split(/\s+/);
    const exact = [];
    const hits = [];
    for (let i = 0; i < idx.asin.length; i++) {
      const asin = idx.asin[i].toLowerCase();
      if (asin === q) exact.push(i);
      else if (asin.startsWith(q) || words.every((w) => state.lower[i].includes(w))) hits.push(i);
    }
    return exact.concat(hits);
  }

  function showResults(query) {
    const box = $("results-box");
    const list = $("results");
    list.replaceChildren();
    if (!query.trim()) { box.hidden = true; return []; }
    const found = search(query);
    $("results-count").textContent = found.length === 0 ? "no product matches"
      : found.length + (found.length === 1 ? " product" : " products") +
        (found.length > MAX_RESULTS ? " (first " + MAX_RESULTS + " shown)" : "");
    for (const i of found.slice(0, MAX_RESULTS)) {
      const item = el("li", { "data-asin": state.index.asin[i] },
        el("span", { class: "asin", text: state.index.asin[i] }),
        el("span", { text: state.index.title[i] }), chip(state.index.class[i]));
      item.addEventListener("click", () => go(i));
      list.append(item);
    }
    box.hidden = false;
    return found;
  }

  // ------------------------------------------------------------------ product card

  function go(node) { location.hash = encodeURIComponent(state.index.asin[node]); }

  function nodeOfHash() {
    const asin = decodeURIComponent(location.hash.replace(/^#/, ""));
    return asin ? state.index.asin.indexOf(asin) : -1;
  }

  async function show(node) {
    const idx = state.index;
    state.current = node;
    const card = $("product");
    card.dataset.state = "loading";
    card.dataset.asin = idx.asin[node];
    let d;
    try {
      d = await details(node);
    } catch (err) {
      notice(String(err.message || err));
      return;
    }
    if (state.current !== node) return;  // a later click won
    $("product-image").replaceChildren(image(idx.asin[node], idx.title[node]));
    $("product-title").textContent = idx.title[node];
    $("product-asin").textContent = idx.asin[node];
    $("product-class").replaceChildren(chip(idx.class[node]));
    for (const id of ["clip-title", "clip-desc"]) {
      $(id).parentElement.hidden = !state.meta.has_clip_t;
    }
    $("clip-title").textContent = fmtScore(d.clip_t[0]);
    $("clip-desc").textContent = fmtScore(d.clip_t[1]);
    $("product-degree").textContent = String(idx.degree[node]);
    $("product-nreviews").textContent = d.n_reviews + (d.reviews.length < d.n_reviews
      ? " (first " + d.reviews.length + " shown)" : "");
    $("reviews").replaceChildren(...d.reviews.map((r) => el("li", { text: r })));
    const shown = d.nbr.length / 3;
    $("neighbours-heading").textContent = "Co-purchase neighbours: " +
      (shown < idx.degree[node] ? "the " + shown + " heaviest of " + idx.degree[node]
        : String(shown)) + " (weight = distinct co-purchasing users)";
    const items = [];
    for (let j = 0; j < d.nbr.length; j += 3) {
      const [v, w, r] = [d.nbr[j], d.nbr[j + 1], d.nbr[j + 2]];
      const item = el("li", { class: "neighbour", "data-asin": idx.asin[v], title: idx.title[v] },
        el("div", { class: "thumb" }, image(idx.asin[v], idx.title[v])),
        el("div", {}, el("span", { class: "weight", text: "weight " + w + " " }), chip(idx.class[v])),
        el("div", { class: "title", text: idx.title[v] }),
        el("div", { class: "relation", title: relationText(r) },
          el("b", { text: r < 0 ? "" : "relation " + r + ": " }), relationText(r)));
      item.addEventListener("click", () => go(v));
      items.push(item);
    }
    $("neighbours").replaceChildren(...items);
    for (const c of document.querySelectorAll("#subgraph circle")) {
      c.classList.toggle("selected", Number(c.dataset.node) === node);
    }
    card.hidden = false;
    card.dataset.state = "ready";
  }

  // ------------------------------------------------------------------ subgraph

  function drawSubgraph() {
    const s = state.meta.sample;
    const idx = state.index;
    const at = new Map(s.nodes.map((u, i) => [u, [s.x[i], s.y[i]]]));
    const root = $("subgraph");
    const edges = svg("g", {});
    for (const [u, v, w, r] of s.edges) {
      const [x1, y1] = at.get(u);
      const [x2, y2] = at.get(v);
      const line = svg("line", { x1, y1, x2, y2, "stroke-width": (1 + Math.log(w)).toFixed(2) });
      const tip = svg("title", {});
      tip.textContent = idx.title[u] + " — " + idx.title[v] + ": weight " + w + ", " +
        relationText(r);
      line.append(tip);
      edges.append(line);
    }
    const nodes = svg("g", {});
    for (const u of s.nodes) {
      const [x, y] = at.get(u);
      const dot = svg("circle", { cx: x, cy: y, r: 10, fill: colour(idx.class[u]),
        "data-node": u, "data-asin": idx.asin[u] });
      const tip = svg("title", {});
      tip.textContent = idx.asin[u] + ": " + idx.title[u] + " (" + className(idx.class[u]) + ")";
      dot.append(tip);
      dot.addEventListener("click", () => go(u));
      nodes.append(dot);
    }
    root.replaceChildren(edges, nodes);
    const present = [...new Set(s.nodes.map((u) => idx.class[u]))].sort((a, b) => a - b);
    $("legend").replaceChildren(...present.map((c) => el("li", {}, chip(c))));
    $("subgraph-summary").textContent = s.nodes.length + " products, " + s.edges.length +
      " of its co-purchase edges drawn (each product's heaviest), " + present.length +
      " classes; edge width ~ log weight. " +
      "Click a product to open it.";
  }

  // ------------------------------------------------------------------ start

  function start() {
    const meta = state.meta;
    if (!meta || !state.index) {
      notice("The explorer's data files (explorer/meta.js, explorer/index.js) did not load.");
      return;
    }
    document.title = meta.category + " · ACMMG explorer";
    $("heading").textContent = meta.category;
    $("summary").textContent = meta.nodes.toLocaleString("en") + " products · " +
      meta.edges.toLocaleString("en") + " co-purchase edges · " + meta.classes.length +
      " classes";
    drawSubgraph();
    const input = $("search");
    input.addEventListener("input", () => showResults(input.value));
    input.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      const found = showResults(input.value);
      if (found.length) go(found[0]);
    });
    window.addEventListener("hashchange", () => {
      const node = nodeOfHash();
      if (node >= 0) show(node);
    });
    const node = nodeOfHash();
    show(node >= 0 ? node : meta.focus);
  }

  document.addEventListener("DOMContentLoaded", start);

  return {
    meta(value) { state.meta = value; },
    index(value) { state.index = value; },
    shard(value) { state.shards[Math.floor(value.start / state.meta.shard_nodes)] = value; },
    search: search,
  };
})();
