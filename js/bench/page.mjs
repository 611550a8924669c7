// Open the example page in headless Chromium on an artifact and return what it computed, with the memory the
// tab's renderer process peaked at (the WASM heap lives there). Used by the browser test and the benchmark.
import { existsSync, readFileSync, readdirSync } from "node:fs";

import { startServer } from "../examples/browser/serve.mjs";

export const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => p && existsSync(p));
// Chromium's own background traffic is refused on machines without internet; these flags keep it quiet
const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

/** @param {number} pid @param {string} field @returns {number | null} kB */
function statusKb(pid, field) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(`${field}:`));
    return line ? Number(line.split(/\s+/)[1]) : null;
  } catch {
    return null;
  }
}

/** Every process below `root` (Linux /proc), with its command line. @param {number} root */
function descendants(root) {
  /** @type {Map<number, number[]>} */
  const children = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch { /* gone */ }
  }
  const out = [];
  const todo = [root];
  while (todo.length) {
    const p = /** @type {number} */ (todo.pop());
    for (const c of children.get(p) ?? []) {
      let cmd = "";
      try { cmd = readFileSync(`/proc/${c}/cmdline`, "utf8").replaceAll("\0", " "); } catch { /* gone */ }
      out.push({ pid: c, cmd });
      todo.push(c);
    }
  }
  return out;
}

/**
 * @param {{ modelDir: string, variant: string, timeoutMs?: number }} options
 * @returns {Promise<any>} the page's `window.rosberta`, plus `rendererPeakMb` (VmHWM of its renderer process)
 */
export async function openPage({ modelDir, variant, timeoutMs = 300_000 }) {
  if (!CHROMIUM) throw new Error("no Chromium at /usr/bin/chromium or CHROMIUM_PATH");
  const { chromium } = await import("playwright-core");
  const server = await startServer({ modelDir, port: 0 });
  // a harmless switch that marks this browser's main process, so its renderer can be found under /proc
  const marker = `--class=rosberta-page-${process.pid}-${Date.now()}`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, marker] });
  try {
    const page = await browser.newPage();
    const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
    await page.goto(`http://127.0.0.1:${port}/?variant=${variant}`);
    await page.waitForFunction(() => /** @type {any} */ (window).rosberta, null, { timeout: timeoutMs });
    const result = await page.evaluate(() => /** @type {any} */ (window).rosberta);
    const main = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).find((d) => {
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
        return cmd.includes(marker) && !cmd.includes("--type=");
      } catch {
        return false;
      }
    });
    const renderers = main ? descendants(Number(main)).filter((p) => p.cmd.includes("--type=renderer")) : [];
    const peaks = renderers.map((r) => statusKb(r.pid, "VmHWM") ?? 0);
    return { ...result, rendererPeakMb: peaks.length ? Math.max(...peaks) / 1024 : null };
  } finally {
    await browser.close();
    server.close();
  }
}
