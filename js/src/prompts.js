// @ts-check
/**
 * The prefix contract, the same as the Python runtime's: task names map to the manifest's prompt table, an
 * unknown task lists the valid ones, and a text that already starts with a known prefix is not prefixed twice.
 * @module
 */
import { TaskError } from "./errors.js";

/**
 * The task whose prefix `text` already starts with (leading whitespace skipped, trailing space of the prefix
 * optional), else `null`.
 * @param {string} text
 * @param {Record<string, string>} prompts
 * @returns {string | null}
 */
export function knownPrefix(text, prompts) {
  const head = text.replace(/^\s+/u, "");
  for (const [name, prefix] of Object.entries(prompts)) {
    const stem = prefix.replace(/\s+$/u, "");
    if (stem && head.startsWith(stem)) return name;
  }
  return null;
}

/**
 * @typedef {object} Prompted
 * @property {string[]} texts the texts as the model will see them
 * @property {Record<string, number[]>} alreadyPrefixed per task name, the indices that carried its prefix already
 */

/**
 * Prefix `texts` for `task` (a name in `prompts`), or return them as given when `task` is null/undefined.
 * @param {string[]} texts
 * @param {string | null | undefined} task
 * @param {Record<string, string>} prompts
 * @returns {Prompted}
 */
export function applyPrompt(texts, task, prompts) {
  if (task === null || task === undefined) return { texts, alreadyPrefixed: {} };
  if (typeof task !== "string" || !Object.hasOwn(prompts, task)) {
    const names = Object.keys(prompts);
    const valid = names.length ? names.map((t) => JSON.stringify(t)).join(", ") : "(none: this model has no prompt table; pass task: null)";
    throw new TaskError(`unknown task ${JSON.stringify(task)}; valid tasks for this model: ${valid}, or null for no prefix`);
  }
  const prefix = prompts[task];
  /** @type {Record<string, number[]>} */
  const already = {};
  const out = texts.map((t, i) => {
    const found = knownPrefix(t, prompts);
    if (found === null) return prefix + t;
    (already[found] ??= []).push(i);
    return t;
  });
  return { texts: out, alreadyPrefixed: already };
}

/**
 * The warning the Python runtime raises as a PromptWarning, in the same words; `null` when nothing to say.
 * @param {string} task
 * @param {Record<string, number[]>} already
 * @param {Record<string, string>} prompts
 * @returns {string | null}
 */
export function promptWarning(task, already, prompts) {
  const entries = Object.entries(already);
  if (!entries.length) return null;
  const total = entries.reduce((n, [, ix]) => n + ix.length, 0);
  const parts = entries.map(([name, ix]) => `${ix.length} with ${JSON.stringify(prompts[name])} (first at index ${ix[0]})`);
  return `task=${JSON.stringify(task)}: ${total} text(s) already start with a task prefix and were not prefixed again: ` +
    `${parts.join("; ")}. Pass task: null to embed texts exactly as given.`;
}
