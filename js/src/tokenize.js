// @ts-check
/**
 * Tokenisation from the artifact's `tokenizer.json`, with the model's own truncation, as the Python runtime
 * does it. `@huggingface/tokenizers` (pure JS) gives the same ids as Python `tokenizers` on this project's texts;
 * it neither pads nor truncates, and ignores the file's own padding/truncation blocks — which this module
 * wants anyway (those blocks have capped 512-token models at 128 in other tools).
 *
 * Truncation keeps the special tokens: the content is cut to `maxLength − specials` and the specials are put
 * back around it (`<s> … </s>`), as transformers does. Cutting the encoded ids instead would drop the closing
 * `</s>` and give another vector.
 * @module
 */
import { Tokenizer } from "@huggingface/tokenizers";

import { wordRule, wordStarts } from "./chunking.js";
import { ArtifactError, InputTooLongError, RosbertaError } from "./errors.js";

/**
 * @typedef {object} Tokenized
 * @property {number[][]} ids per text, specials included, truncated to the max length when asked
 * @property {number[]} tokenCounts tokens per text before truncation, specials included
 * @property {boolean[]} truncated per text: cut to the max length
 */

export class TextTokenizer {
  /**
   * @param {object} tokenizerJson the parsed `tokenizer.json`
   * @param {{ maxLength: number, padId: number, source?: string }} options
   */
  constructor(tokenizerJson, { maxLength, padId, source = "tokenizer.json" }) {
    try {
      this._tok = new Tokenizer(tokenizerJson, {});
    } catch (err) {
      throw new ArtifactError(`${source} is not a tokenizer this package can read (${errorText(err)}); re-export the model folder`, { cause: err });
    }
    this.maxLength = maxLength;
    this.padId = padId;
    /** where a word starts, by the file's model section (the same rule as the Python runtime's) */
    this.wordRule = wordRule(/** @type {{ model?: { type?: string, continuing_subword_prefix?: string | null } }} */ (tokenizerJson).model ?? {});
    // The specials the post-processor puts around a text: found once by encoding a probe with and without them.
    const probe = "a";
    const bare = this._tok.encode(probe, { add_special_tokens: false }).ids;
    const full = this._tok.encode(probe, { add_special_tokens: true }).ids;
    let at = -1;
    for (let p = 0; p + bare.length <= full.length && at < 0; p++) {
      if (bare.every((/** @type {number} */ id, /** @type {number} */ k) => full[p + k] === id)) at = p;
    }
    if (at < 0) throw new ArtifactError(`${source}: cannot tell its special tokens from the text (probe ${JSON.stringify(full)})`);
    /** ids the post-processor puts before and after a text's own */
    this._prefix = full.slice(0, at);
    this._suffix = full.slice(at + bare.length);
    if (this._prefix.length + this._suffix.length >= maxLength) {
      throw new ArtifactError(`max length ${maxLength} leaves no room for text besides the ${this._prefix.length + this._suffix.length} special tokens`);
    }
  }

  /**
   * @param {string[]} texts
   * @param {{ truncate?: boolean }} [options] `truncate: false` throws on the first over-long text instead
   * @returns {Tokenized}
   */
  tokenize(texts, { truncate = true } = {}) {
    const ids = texts.map((t) => this._tok.encode(t, { add_special_tokens: true }).ids);
    const tokenCounts = ids.map((x) => x.length);
    const over = tokenCounts.flatMap((n, i) => (n > this.maxLength ? [i] : []));
    if (over.length && !truncate) {
      const i = over[0];
      throw new InputTooLongError(`texts[${i}] has ${tokenCounts[i]} tokens, more than this model's max length of ${this.maxLength} ` +
        `(${over.length} text(s) are over). Pass truncate: true to cut them, or split the text.`);
    }
    // The post-processor only wraps a text's own ids, so they are the middle of its full encoding: cut there
    // (encoding a 10 MB text again without specials would double its cost).
    const room = this.maxLength - this._prefix.length - this._suffix.length;
    const start = this._prefix.length;
    for (const i of over) ids[i] = [...this._prefix, ...ids[i].slice(start, start + room), ...this._suffix];
    return { ids, tokenCounts, truncated: tokenCounts.map((n) => n > this.maxLength) };
  }

  /**
   * One prepared text's encoding split where its own words start: what every window repeats (the specials and the
   * task prefix's ids), the text's own ids and where a word starts among them. The Python runtime also gives each
   * id's characters; this tokenizer library gives no offsets, so windows here carry token spans only.
   * @param {string} text the text with its task prefix
   * @param {number} start the character where the text's own words begin (0 without a prefix)
   * @returns {{ head: number[], content: number[], tail: number[], starts: boolean[] }}
   */
  split(text, start) {
    const enc = this._tok.encode(text, { add_special_tokens: false });
    let k = 0;
    if (start > 0) {
      const head = this._tok.encode(text.slice(0, start).trimEnd(), { add_special_tokens: false }).ids;
      if (!head.every((/** @type {number} */ id, /** @type {number} */ i) => enc.ids[i] === id)) {
        throw new RosbertaError(`the task prefix of ${JSON.stringify(text.slice(0, 40))}... does not tokenise apart from the text ` +
          "after it, so its windows cannot repeat it; chunk it with task: null and the prefix written into the text");
      }
      k = head.length;
    }
    return {
      head: [...this._prefix, ...enc.ids.slice(0, k)],
      content: enc.ids.slice(k),
      tail: [...this._suffix],
      starts: wordStarts(enc.tokens.slice(k), this.wordRule),
    };
  }

  /**
   * Right-pad `rows` with the model's real pad id (RoBERTa computes positions from ids != pad id).
   * @param {number[][]} rows
   * @returns {{ ids: BigInt64Array, mask: BigInt64Array, width: number }}
   */
  pad(rows) {
    const width = Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(rows.length * width).fill(BigInt(this.padId));
    const mask = new BigInt64Array(rows.length * width);
    rows.forEach((r, j) => {
      for (let k = 0; k < r.length; k++) {
        ids[j * width + k] = BigInt(r[k]);
        mask[j * width + k] = 1n;
      }
    });
    return { ids, mask, width };
  }
}

/** @param {unknown} err */
export function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}
