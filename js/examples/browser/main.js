// Embed a query and a few documents in the page, rank the documents by cosine similarity.
// ?model=URL (default /model/) and ?variant=auto|int8|fp32 choose the artifact and variant.
import { Encoder } from "rosberta-onnx";

const params = new URLSearchParams(location.search);
const status = document.getElementById("status");

async function run() {
  const { query, documents } = await (await fetch("texts.json")).json();
  const t0 = performance.now();
  const enc = await Encoder.load(params.get("model") ?? "/model/", { variant: params.get("variant") ?? "auto" });
  const loaded = performance.now() - t0;
  // RoSBERTa's prefixes; a model without a prompt table (e.g. MiniLM) embeds the texts as given
  const task = (/** @type {string} */ name) => (enc.tasks.includes(name) ? name : null);
  const [q] = await enc.encode([query], { task: task("search_query") });
  const docs = await enc.encode(documents, { task: task("search_document") });
  const took = performance.now() - t0 - loaded;
  const scores = docs.map((d) => d.reduce((s, x, i) => s + x * q[i], 0));
  const order = scores.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0]);
  document.getElementById("query").textContent = query;
  document.getElementById("ranking").replaceChildren(...order.map(([s, i]) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td class="score">${s.toFixed(4)}</td><td></td>`;
    tr.lastChild.textContent = documents[i];
    return tr;
  }));
  status.textContent = `${enc.variant} (${enc.selection}), ${enc.threads} WASM thread(s)` +
    `${crossOriginIsolated ? "" : " — not cross-origin isolated: serve with COOP/COEP headers for more"}; ` +
    `loaded in ${(loaded / 1000).toFixed(1)} s, embedded ${documents.length + 1} texts in ${took.toFixed(0)} ms`;
  // for tests and benchmarks driving the page
  window.rosberta = { variant: enc.variant, threads: enc.threads, isolated: crossOriginIsolated, query: Array.from(q),
    documents: docs.map((d) => Array.from(d)), scores, loadMs: loaded, encodeMs: took };
}

run().catch((err) => {
  status.textContent = `error: ${err.message}`;
  window.rosberta = { error: `${err.name}: ${err.message}` };
});
