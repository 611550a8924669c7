// @ts-check
/**
 * Texts longer than the model's window, as overlapping windows of tokens — the same windows as the Python runtime's
 * `rosberta_onnx.chunking`, from the same rule read from the same `tokenizer.json`:
 *
 * - a window starts where a word starts (WordPiece: a token without the `##` continuation mark; byte-level BPE and
 *   SentencePiece: a token whose first character is the space/newline mark `Ġ`, `Ċ`, `▁`, ...), so the text of a
 *   window tokenises to the window's own ids;
 * - the first starts at token 0 and holds `window` tokens (a text's first window is its truncated encoding); each next
 *   one starts at the word start nearest `overlap` tokens before the end of the one before; the last ends at the
 *   text's end and starts as early as a full window allows, at a word start;
 * - a word longer than a window is the one place a window starts mid-word.
 * @module
 */

/**
 * How a tokenizer marks where a word starts.
 * @typedef {{ continuation: string, starters: string }} WordRule
 */

/** byte-level BPE's space, newline, tab, CR, VT and FF, and SentencePiece's space: a piece beginning with one begins a word */
export const WORD_MARKS = "\u0120\u010a\u0109\u010d\u010b\u010c\u2581";

/**
 * The rule of a `tokenizer.json`'s `model` section.
 * @param {{ type?: string, continuing_subword_prefix?: string | null }} model
 * @returns {WordRule}
 */
export function wordRule(model) {
  if (model.continuing_subword_prefix) return { continuation: model.continuing_subword_prefix, starters: "" };
  if (model.type === "BPE" || model.type === "Unigram") return { continuation: "", starters: WORD_MARKS };
  return { continuation: "", starters: "" };
}

/**
 * For each of a text's own tokens, whether a window may start there.
 * @param {string[]} tokens
 * @param {WordRule} rule
 * @returns {boolean[]}
 */
export function wordStarts(tokens, rule) {
  const marks = tokens.map((t) => {
    if (rule.continuation) return !t.startsWith(rule.continuation);
    if (rule.starters) return t.length > 0 && rule.starters.includes(t[0]);
    return true;
  });
  if (marks.length) marks[0] = true;
  return marks;
}

/**
 * `[start, end)` token spans covering `n` tokens; one `[0, n]` when they fit.
 * @param {number} n
 * @param {number} window
 * @param {number} overlap
 * @param {boolean[]} [starts] where a window may start (default: anywhere)
 * @returns {[number, number][]}
 */
export function windows(n, window, overlap, starts) {
  if (n <= window) return [[0, n]];
  const ok = starts ?? new Array(n).fill(true);
  /** @type {[number, number][]} */
  const spans = [];
  let a = 0;
  while (a + window < n) {
    const b = a + window;
    spans.push([a, b]);
    a = nearestStart(ok, b - overlap, a + 1, b);
  }
  let last = a;
  for (let i = Math.max(n - window, 0); i < a; i++) {
    if (ok[i]) { last = i; break; }
  }
  spans.push([last, n]);
  return spans;
}

/**
 * The word start in `lo..hi` nearest `target` (the earlier on a tie); `hi` when there is none.
 * @param {boolean[]} ok @param {number} target @param {number} lo @param {number} hi
 */
function nearestStart(ok, target, lo, hi) {
  let best = -1;
  for (let i = lo; i <= hi; i++) {
    if (ok[i] && (best < 0 || Math.abs(i - target) < Math.abs(best - target))) best = i;
  }
  return best < 0 ? hi : best;
}

/**
 * `window` fits in `room` tokens and `overlap` is less than it: a RangeError naming the value otherwise.
 * @param {number} window @param {number} overlap @param {number} room
 */
export function checkWindow(window, overlap, room) {
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`window must be a whole number of tokens >= 1, got ${window}`);
  if (window > room) {
    throw new RangeError(`window=${window} does not fit: the model's max length leaves ${room} tokens beside the special tokens ` +
      `and the task prefix; choose window <= ${room} (or leave it out for that)`);
  }
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= window) {
    throw new RangeError(`overlap must be a whole number of tokens from 0 to window - 1 (${window - 1}), got ${overlap}`);
  }
}
