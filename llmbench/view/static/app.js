// llmbench view: the page. Plain JavaScript, no build step, nothing fetched but this server's /api.
// Every piece of data goes into the document as text (textContent, never innerHTML): model outputs
// are untrusted, and the server's Content-Security-Policy runs no script but this file.
"use strict";

const STATUSES = ["correct", "wrong", "unparsed", "truncated", "timeout", "error"];

// ---- DOM helpers --------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}
function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en");
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en");
  if (a >= 100) return v.toFixed(1);
  return String(Number(v.toPrecision(digits)));
}
// Scores and their intervals with three decimals, so a column of them lines up.
function fixed(v) {
  return v === null || v === undefined ? "" : v.toFixed(3);
}
function score(m) {
  return m ? fixed(m.value) : "";
}
function interval(m) {
  if (!m || m.ci_low === null || m.ci_low === undefined || m.ci_high === null) return "";
  return `[${fixed(m.ci_low)}, ${fixed(m.ci_high)}]`;
}
function metricCell(m) {
  return el("td", { class: "num" }, score(m), " ", el("span", { class: "ci" }, interval(m)));
}
function badge(status) {
  return el("span", { class: `badge ${status || ""}`, "data-status": status || "" }, status || "—");
}
function shortFile(id) {
  return String(id).split("/").slice(-2).join("/");
}
function when(iso) {
  return (iso || "").replace("T", " ").replace(/\+00:00$/, " UTC");
}

// ---- API and routing -----------------------------------------------------------------------------
async function api(route, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined && v !== "") query.set(k, v);
  const res = await fetch(`/api/${route}?${query}`);
  const data = await res.json();
  if (!res.ok) throw new Error(data && data.error ? data.error : `${res.status}`);
  return data;
}
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [page, q] = raw.split("?");
  return { page: page || "", params: Object.fromEntries(new URLSearchParams(q || "")) };
}
function href(page, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return `#/${page}${s ? "?" + s : ""}`;
}
function go(page, params) {
  location.hash = href(page, params);
}
function crumbs(...items) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  items.forEach((item, i) => {
    if (i) nav.appendChild(el("span", { class: "sep" }, "›"));
    nav.appendChild(item.href ? el("a", { href: item.href }, item.text) : el("span", {}, item.text));
  });
}
function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren();
  append(main, nodes);
  main.setAttribute("data-ready", parseHash().page || "runs");
  main.dataset.shown = location.hash; // which address this page is the answer to (tests wait on it)
}
function withUnit(c) {
  return c.unit && !c.title.includes(c.unit) ? `${c.title} (${c.unit})` : c.title;
}
function runLabel(r) {
  return [r.model, r.backend, r.variant, r.suite].filter(Boolean).join(" · ");
}
function pager(data, onPage, noun) {
  return el(
    "div",
    { class: "pager", "data-testid": "pager" },
    el("button", { disabled: data.page <= 1, onclick: () => onPage(data.page - 1) }, "← previous"),
    el("span", {}, `page ${data.page} of ${data.pages} · ${data.total} ${noun}`),
    el("button", { disabled: data.page >= data.pages, onclick: () => onPage(data.page + 1) }, "next →"),
  );
}

// ---- Page 1: the runs (and a study's leaderboard) -----------------------------------------------
const selected = new Set();

async function pageRuns(params) {
  crumbs({ text: "runs" });
  const data = await api("runs", { page: params.page, q: params.q });
  const parts = [];
  if (data.study) {
    const board = await api("study", {});
    if (board) parts.push(studyBoard(board));
  }
  const compare = el("button", { class: "primary", "data-testid": "compare", onclick: () => {
    const [a, b] = [...selected];
    go("diff", { a, b });
  } }, "Compare the two selected");
  const open = el("button", { "data-testid": "open", onclick: () => go("run", { id: [...selected][0] }) }, "Open the selected run");
  const refresh = () => {
    compare.disabled = selected.size !== 2;
    open.disabled = selected.size !== 1;
  };
  refresh();
  const search = el("input", { type: "search", placeholder: "model, suite, backend, file", value: params.q || "", "aria-label": "search runs" });
  search.addEventListener("change", () => go("", { q: search.value }));
  const cols = data.perf_columns;
  const rows = data.rows.map((r) => {
    const box = el("input", { type: "checkbox", "aria-label": `select ${r.file}`, checked: selected.has(r.id), disabled: !!r.error });
    const tr = el(
      "tr",
      { "data-run": r.id, class: selected.has(r.id) ? "selected" : "" },
      el("td", {}, box),
      el("td", { class: "nowrap" }, r.error ? r.model || r.file : el("a", { href: href("run", { id: r.id }) }, r.model || "?")),
      el("td", {}, r.suite || ""),
      el("td", {}, [r.backend, r.variant].filter(Boolean).join(" · ")),
      el("td", { class: "nowrap" }, when(r.created_at)),
      r.error ? el("td", { colspan: cols.length + 2, class: "error" }, r.error) : metricCell(r.score),
      r.error ? null : cols.map((c) => el("td", { class: "num" }, fmt((r.perf || {})[c.key]))),
      r.error ? null : el("td", { class: "num" }, r.samples === undefined ? "" : `${r.samples}${r.errors ? ` (${r.errors} failed)` : ""}`),
      el("td", { class: "muted path", title: r.file }, r.file),
    );
    box.addEventListener("change", () => {
      if (box.checked) selected.add(r.id);
      else selected.delete(r.id);
      tr.className = box.checked ? "selected" : "";
      refresh();
    });
    return tr;
  });
  const table = el(
    "table",
    { "data-testid": "runs" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "model"), el("th", {}, "suite"), el("th", {}, "backend"),
      el("th", {}, "when"), el("th", { class: "num" }, "score [95% CI]"),
      cols.map((c) => el("th", { class: "num" }, withUnit(c))),
      el("th", { class: "num" }, "samples"), el("th", {}, "file"))),
    el("tbody", {}, rows),
  );
  parts.push(
    el("h1", {}, data.study ? "Runs of the study" : "Runs"),
    el("div", { class: "toolbar" }, search, open, compare, el("span", { class: "muted" }, "tick one run to open it, two to compare them")),
    table,
    pager(data, (p) => go("", { q: params.q, page: p }), "runs"),
  );
  return parts;
}

function studyBoard(board) {
  const head = el("tr", {}, el("th", {}, "model"), el("th", { class: "num" }, "composite [95% CI]"),
    board.suites.map((s) => el("th", { class: "num" }, s)), board.axes.map((a) => el("th", { class: "num" }, a.title)));
  const rows = board.rows.map((r) =>
    el("tr", { "data-row": r.label },
      el("td", { class: "nowrap" }, r.pareto ? el("span", { class: "star", title: `on the quality/${board.pareto_axis} front` }, "★ ") : null,
        r.files.length ? el("a", { href: href("run", { id: r.files[0] }) }, r.label) : r.label,
        r.label === board.best_fit ? [" ", el("span", { class: "badge correct" }, "best fit")] : null,
        r.excluded ? el("div", { class: "muted" }, r.excluded) : null),
      metricCell(r.composite),
      board.suites.map((s) => metricCell(r.suites[s])),
      board.axes.map((a) => el("td", { class: "num" }, fmt(r.costs[a.key]))),
    ));
  const counts = Object.entries(board.cells || {}).map(([k, v]) => `${v} ${k}`).join(", ");
  return el("section", { "data-testid": "study-board" },
    el("h1", {}, `Study ${board.name}`),
    el("div", { class: "meta" }, counts ? `cells: ${counts}` : "", board.best_fit ? `best within the constraints: ${board.best_fit}` : ""),
    el("table", {}, el("thead", {}, head), el("tbody", {}, rows)),
    el("p", { class: "muted" }, `★ on the Pareto front of composite against ${board.pareto_axis}`));
}

// ---- Page 2: one run ----------------------------------------------------------------------------
async function pageRun(params) {
  const run = await api("run", { id: params.id });
  crumbs({ text: "runs", href: "#/" }, { text: runLabel(run) });
  const filters = { task: params.task, verdict: params.verdict, status: params.status, language: params.language,
    length: params.length, depth: params.depth, text: params.text };
  const data = await api("samples", { id: params.id, page: params.page, ...filters });
  const set = (changes) => go("run", { ...params, ...changes, page: changes.page || null });

  const figs = [el("div", { class: "fig" }, el("div", { class: "k" }, "suite score"), el("div", { class: "v" }, score(run.score) || "—"), el("div", { class: "ci" }, interval(run.score)))];
  for (const c of run.perf_columns) {
    const v = (run.perf || {})[c.key];
    if (v !== null && v !== undefined) figs.push(el("div", { class: "fig" }, el("div", { class: "k" }, withUnit(c)), el("div", { class: "v" }, fmt(v))));
  }
  const taskRows = run.tasks.map((t) => el("tr", { "data-task": t.name },
    el("td", {}, el("a", { href: href("run", { id: params.id, task: t.name }) }, t.name)),
    el("td", {}, t.scorer), el("td", {}, t.primary), metricCell(t.metrics[t.primary]), el("td", { class: "num" }, t.n),
    STATUSES.map((s) => el("td", { class: "num" }, (t.counts || {})[s] ? el("a", { href: href("run", { id: params.id, task: t.name, status: s }) }, t.counts[s]) : "0")),
  ));
  const breakdowns = run.tasks.filter((t) => Object.keys(t.breakdown).length).map((t) =>
    el("details", {}, el("summary", {}, `${t.name}: ${t.primary} by ${Object.keys(t.breakdown)[0].split(",").map((p) => p.split("=")[0]).join(" and ")}`),
      el("table", {}, el("tbody", {}, Object.entries(t.breakdown).map(([label, m]) => el("tr", {}, el("td", {}, label), metricCell(m), el("td", { class: "num" }, m ? `n=${m.n}` : "")))))));

  const select = (name, label, options, value) => {
    const s = el("select", { name, "aria-label": label, "data-filter": name },
      el("option", { value: "" }, "any"), options.map((o) => el("option", { value: o[0], selected: o[0] === value }, o[1])));
    s.addEventListener("change", () => set({ [name]: s.value }));
    return el("label", {}, label, s);
  };
  const text = el("input", { type: "search", name: "text", value: params.text || "", placeholder: "prompt, output, reference, id", "aria-label": "search samples", "data-filter": "text" });
  text.addEventListener("change", () => set({ text: text.value }));
  const facetLabels = { language: "language", length: "length", depth: "depth" };
  const bar = el("div", { class: "filters", "data-testid": "filters" },
    select("task", "task", run.tasks.map((t) => [t.name, t.name]), params.task),
    select("verdict", "verdict", [["correct", "correct"], ["incorrect", "not correct"]], params.verdict),
    select("status", "failure category", STATUSES.map((s) => [s, s]), params.status),
    Object.entries(run.facets).map(([k, values]) => select(k, facetLabels[k] || k, values.map((v) => [v, v]), params[k])),
    el("label", {}, "text", text),
    el("button", { onclick: () => go("run", { id: params.id }) }, "clear"));

  const facetKeys = Object.keys(run.facets);
  const sampleRows = data.rows.map((r) => el("tr", { class: "click", "data-key": r.key, onclick: () => go("sample", { id: params.id, key: r.key }) },
    el("td", { class: "num" }, r.key), el("td", {}, r.task), el("td", {}, el("a", { href: href("sample", { id: params.id, key: r.key }) }, r.id + (r.sample_index ? ` #${r.sample_index}` : ""))),
    el("td", {}, badge(r.status)), facetKeys.map((k) => el("td", {}, r[k] ?? "")),
    el("td", { class: "preview" }, r.preview),
    el("td", { class: "num" }, fmt(r.tokens_out)), el("td", { class: "num" }, fmt(r.ttft_ms)), el("td", { class: "num" }, fmt(r.latency_ms))));
  return [
    el("h1", {}, runLabel(run)),
    el("div", { class: "meta" }, el("span", {}, when(run.created_at)), run.device ? el("span", {}, run.device) : null,
      el("span", {}, run.model_path || ""), el("span", {}, `file ${run.id}`), run.finished ? null : el("span", { class: "error" }, "unfinished")),
    el("div", { class: "cards" }, figs),
    el("h2", {}, "Tasks"),
    el("table", { "data-testid": "tasks" }, el("thead", {}, el("tr", {}, el("th", {}, "task"), el("th", {}, "scorer"), el("th", {}, "metric"),
      el("th", { class: "num" }, "value [95% CI]"), el("th", { class: "num" }, "n"), STATUSES.map((s) => el("th", { class: "num" }, s)))), el("tbody", {}, taskRows)),
    breakdowns,
    el("details", {}, el("summary", {}, "fingerprint and settings"), keyValues({ ...run.fingerprint, ...Object.fromEntries(Object.entries(run.settings).map(([k, v]) => [`settings.${k}`, v])) })),
    el("h2", {}, "Samples"),
    bar,
    el("table", { "data-testid": "samples" }, el("thead", {}, el("tr", {}, el("th", { class: "num" }, "#"), el("th", {}, "task"), el("th", {}, "sample"), el("th", {}, "verdict"),
      facetKeys.map((k) => el("th", {}, k)), el("th", {}, "output"), el("th", { class: "num" }, "tokens"), el("th", { class: "num" }, "TTFT (ms)"), el("th", { class: "num" }, "E2E (ms)"))),
      el("tbody", {}, sampleRows)),
    data.rows.length ? null : el("p", { class: "muted" }, "No sample matches these filters."),
    pager(data, (p) => set({ page: p }), "samples"),
  ];
}

function keyValues(obj) {
  return el("div", { class: "kv card" }, Object.entries(obj).map(([k, v]) => [el("div", { class: "k" }, k),
    el("div", {}, typeof v === "object" && v !== null ? el("pre", {}, JSON.stringify(v, null, 2)) : String(v))]));
}

// ---- Page 3: one sample -------------------------------------------------------------------------
async function pageSample(params) {
  const [run, s] = await Promise.all([api("run", { id: params.id }), api("sample", { id: params.id, key: params.key })]);
  const r = s.record;
  crumbs({ text: "runs", href: "#/" }, { text: runLabel(run), href: href("run", { id: params.id, task: r.task }) }, { text: `${r.task} / ${r.id}` });
  const key = Number(params.key);
  const prompt = typeof r.prompt === "string"
    ? [el("h2", {}, "Prompt ", el("span", { class: "muted" }, "(as sent: chat template applied)")), el("div", { class: "block", "data-testid": "prompt" }, el("pre", {}, r.prompt))]
    : [el("h2", {}, "Prompt ", el("span", { class: "muted" }, "(messages, rendered by the server's template)")),
      el("div", { class: "block", "data-testid": "prompt" }, (r.prompt || []).map((m) => [el("div", { class: "role" }, m.role), el("pre", {}, m.content)]))];
  const details = { ...r.details };
  const timing = { "TTFT (ms)": r.ttft_ms, "E2E (ms)": r.latency_ms, "TPOT (ms)": r.tpot_ms, "tokens in": r.tokens_in, "tokens out": r.tokens_out,
    "reasoning tokens": r.reasoning_tokens, "finish reason": r.finish_reason, "batch size": r.batch_size };
  return [
    el("div", { class: "toolbar" },
      el("button", { disabled: key <= 0, onclick: () => go("sample", { id: params.id, key: key - 1 }) }, "← previous sample"),
      el("button", { disabled: key >= s.count - 1, onclick: () => go("sample", { id: params.id, key: key + 1 }) }, "next sample →")),
    el("h1", {}, `${r.task} / ${r.id}`, r.sample_index ? ` #${r.sample_index}` : "", " ", badge(r.status)),
    el("div", { class: "meta" }, el("span", {}, `score ${fmt(r.score)}`), el("span", {}, runLabel(run)), r.prompt_hash ? el("span", {}, `prompt ${r.prompt_hash}`) : null),
    r.error ? el("div", { class: "block error", "data-testid": "error" }, el("pre", {}, r.error)) : null,
    prompt,
    s.reasoning ? [el("h2", {}, "Reasoning ", el("span", { class: "muted" }, s.reasoning_unclosed ? "(never closed: cut off while thinking)" : "(cut before scoring)")),
      el("div", { class: "block reasoning", "data-testid": "reasoning" }, el("pre", {}, s.reasoning))] : null,
    el("h2", {}, s.reasoning ? "Answer" : "Output"),
    el("div", { class: "block", "data-testid": "output" }, el("pre", {}, s.answer)),
    el("div", { class: "grid2" },
      el("div", {}, el("h2", {}, "Reference"), el("div", { class: "block", "data-testid": "reference" },
        el("pre", {}, typeof r.reference === "string" ? r.reference : JSON.stringify(r.reference, null, 2)))),
      el("div", {}, el("h2", {}, "Scorer details"), Object.keys(details).length || Object.keys(r.metrics).length
        ? el("div", { "data-testid": "details" }, keyValues({ ...details, ...r.metrics })) : el("p", { class: "muted" }, "none recorded"))),
    el("h2", {}, "Timings"),
    el("div", { class: "cards", "data-testid": "timings" }, Object.entries(timing).filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => el("div", { class: "fig" }, el("div", { class: "k" }, k), el("div", { class: "v" }, fmt(v))))),
    gapsPlot(r.ttft_ms, r.itl_ms),
    Object.keys(r.metadata || {}).length ? [el("h2", {}, "Metadata"), keyValues(r.metadata)] : null,
    (r.warnings || []).length ? [el("h2", {}, "Warnings"), el("ul", {}, r.warnings.map((w) => el("li", {}, w)))] : null,
  ];
}

// TTFT as a shaded band, then each gap between tokens as a point of one line: stalls show as spikes.
function gapsPlot(ttft, gaps) {
  if (!gaps || !gaps.length) return el("p", { class: "muted", "data-testid": "no-gaps" }, "Per-token gaps were not recorded for this sample.");
  const W = 720, H = 170, L = 44, R = 10, T = 12, B = 26;
  const max = Math.max(...gaps) * 1.1 || 1;
  const x = (i) => L + (gaps.length === 1 ? 0 : (i / (gaps.length - 1)) * (W - L - R));
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const points = gaps.map((g, i) => `${x(i).toFixed(1)},${y(g).toFixed(1)}`).join(" ");
  const sorted = [...gaps].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const plot = svg("svg", { class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "data-testid": "gaps",
    "aria-label": `gaps between ${gaps.length + 1} tokens: median ${fmt(median)} ms, max ${fmt(sorted[sorted.length - 1])} ms` },
    svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, fmt(max)),
    svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"),
    svg("text", { x: L, y: H - 8 }, "token 2"),
    svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, `token ${gaps.length + 1}`),
    svg("text", { x: (L + W) / 2, y: H - 8, "text-anchor": "middle" }, "gap to the previous token (ms)"),
    svg("polyline", { class: "line", points }));
  return el("figure", {}, plot, el("figcaption", { class: "muted" },
    `TTFT ${fmt(ttft)} ms, then ${gaps.length} gaps: median ${fmt(median)} ms, max ${fmt(sorted[sorted.length - 1])} ms`));
}

// ---- Page 4: two runs ---------------------------------------------------------------------------
async function pageDiff(params) {
  const [d, data] = await Promise.all([api("diff", { a: params.a, b: params.b }),
    api("diff_rows", { a: params.a, b: params.b, kind: params.kind, page: params.page })]);
  crumbs({ text: "runs", href: "#/" }, { text: "compare two runs" });
  const A = runLabel(d.a), B = runLabel(d.b);
  const t = d.suite_test;
  const test = t ? el("div", { class: "fig", "data-testid": "paired-test" },
    el("div", { class: "k" }, `suite score, B − A (paired ${t.test}, ${t.n} samples)`),
    el("div", { class: "v" }, `${t.delta >= 0 ? "+" : ""}${fixed(t.delta)}`),
    el("div", { class: "ci" }, `${interval({ ci_low: t.ci_low, ci_high: t.ci_high })} p = ${fmt(t.p_value)} `,
      el("span", { class: t.significant ? "sig" : "nosig" }, t.significant ? "significant" : "within noise"))) : el("div", { class: "fig" }, "no paired test: no shared samples");
  const fig = (k, v) => el("div", { class: "fig" }, el("div", { class: "k" }, k), el("div", { class: "v" }, v));
  const fps = [...d.fingerprint, ...d.settings];
  const tabs = [["", `all (${d.flipped + d.changed})`], ["flipped", `verdict flipped (${d.flipped})`], ["changed", `output changed (${d.changed})`]];
  return [
    el("h1", {}, "Two runs"),
    el("div", { class: "grid2" },
      el("div", { class: "card" }, el("div", { class: "k muted" }, "A"), el("a", { href: href("run", { id: d.a.id }) }, A), el("div", { class: "muted" }, `${when(d.a.created_at)} · ${shortFile(d.a.id)}`)),
      el("div", { class: "card" }, el("div", { class: "k muted" }, "B"), el("a", { href: href("run", { id: d.b.id }) }, B), el("div", { class: "muted" }, `${when(d.b.created_at)} · ${shortFile(d.b.id)}`))),
    el("div", { class: "cards" }, test, fig("samples in common", fmt(d.n_common)), fig("verdict flipped", fmt(d.flipped)),
      fig("output changed", fmt(d.changed)), fig("identical outputs", fmt(d.output_matches)),
      fig("same prompt tokens", d.prompt_hash_compared ? `${d.prompt_hash_matches} / ${d.prompt_hash_compared}` : "not recorded")),
    el("h2", {}, "What differs in how they were made"),
    fps.length ? el("table", { "data-testid": "fingerprint-diff" }, el("thead", {}, el("tr", {}, el("th", {}, "where"), el("th", {}, "what"), el("th", {}, "A"), el("th", {}, "B"))),
      el("tbody", {}, fps.map((f) => el("tr", {}, el("td", {}, f.scope), el("td", {}, f.key), el("td", {}, fmtAny(f.a)), el("td", {}, fmtAny(f.b))))))
      : el("p", { class: "muted", "data-testid": "fingerprint-diff" }, "Same fingerprints and settings: the same prompts, templates and generation settings."),
    el("h2", {}, "Per task (paired, McNemar)"),
    el("table", { "data-testid": "task-tests" }, el("thead", {}, el("tr", {}, el("th", {}, "task"), el("th", { class: "num" }, "n"), el("th", { class: "num" }, "A"), el("th", { class: "num" }, "B"),
      el("th", { class: "num" }, "only A correct"), el("th", { class: "num" }, "only B correct"), el("th", { class: "num" }, "p"))),
      el("tbody", {}, d.tasks.map((x) => el("tr", {}, el("td", {}, x.task), el("td", { class: "num" }, x.n), el("td", { class: "num" }, fixed(x.a_score)), el("td", { class: "num" }, fixed(x.b_score)),
        el("td", { class: "num" }, x.a_only_correct), el("td", { class: "num" }, x.b_only_correct), el("td", { class: x.p_value < 0.05 ? "num sig" : "num" }, fmt(x.p_value)))))),
    el("div", { class: "tabs" }, tabs.map(([k, label]) => el("button", { class: (params.kind || "") === k ? "on" : "", "data-kind": k, onclick: () => go("diff", { a: params.a, b: params.b, kind: k }) }, label))),
    el("div", { "data-testid": "diff-rows" }, data.rows.map((r) => diffRow(r, params, [A, B]))),
    data.rows.length ? null : el("p", { class: "muted" }, "The two runs agree on every shared sample."),
    pager(data, (p) => go("diff", { ...params, page: p }), "samples"),
  ];
}
function fmtAny(v) {
  return v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v);
}
function diffRow(r, params, names) {
  const side = (who, id, key, segs, mark) => el("div", { class: "side" },
    el("div", { class: "who" }, who, " · ", el("a", { href: href("sample", { id, key }) }, "open the sample")),
    el("pre", {}, segs.map(([text, changed]) => (changed ? el("span", { class: mark }, text) : text))));
  return el("div", { class: "diffrow", "data-kind": r.kind, "data-sample": `${r.task}/${r.id}` },
    el("div", { class: "head" }, el("span", { class: `badge ${r.kind}` }, r.kind === "flipped" ? "verdict flipped" : "output changed"),
      el("span", { class: "id" }, `${r.task} / ${r.id}${r.sample_index ? ` #${r.sample_index}` : ""}`),
      badge(r.a_status), "→", badge(r.b_status),
      r.same_prompt === false ? el("span", { class: "badge error" }, "different prompt tokens") : null),
    el("div", { class: "sides" }, side(`A · ${names[0]}`, params.a, r.a_key, r.a, "del"), side(`B · ${names[1]}`, params.b, r.b_key, r.b, "ins")));
}

// ---- start --------------------------------------------------------------------------------------
const PAGES = { "": pageRuns, run: pageRun, sample: pageSample, diff: pageDiff };

let shown = 0; // the latest navigation: a slower answer to an earlier one must not replace its page

async function route() {
  const mine = ++shown;
  const { page, params } = parseHash();
  const render = PAGES[page] || pageRuns;
  try {
    const nodes = await render(params);
    if (mine === shown) show(nodes);
  } catch (err) {
    if (mine === shown) show(el("h1", {}, "Cannot show this page"), el("p", { class: "error", "data-testid": "error" }, String(err.message || err)), el("a", { href: "#/" }, "back to the runs"));
  }
  window.scrollTo(0, 0);
}
window.addEventListener("hashchange", route);
route();
