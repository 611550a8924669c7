// @ts-check
/**
 * Length-sorted, token-budgeted batches, exactly as the Python runtime plans them: texts sorted by token
 * length (longest first, ties in input order), cut into batches bounded by count and by padded tokens
 * (rows × longest row); a single text longer than the budget gets a batch of its own. The caller puts the
 * results back in input order.
 * @module
 */

/**
 * @param {ArrayLike<number>} lengths tokens per text
 * @param {{ batchSize: number, maxBatchTokens: number }} limits
 * @returns {number[][]} indices into `lengths`, grouped into batches
 */
export function planBatches(lengths, { batchSize, maxBatchTokens }) {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a whole number >= 1, got ${batchSize}`);
  if (!Number.isInteger(maxBatchTokens) || maxBatchTokens < 1) {
    throw new RangeError(`maxBatchTokens must be a whole number >= 1, got ${maxBatchTokens}`);
  }
  const order = Array.from({ length: lengths.length }, (_, i) => i);
  order.sort((a, b) => lengths[b] - lengths[a] || a - b);
  /** @type {number[][]} */
  const batches = [];
  /** @type {number[]} */
  let current = [];
  let longest = 0;
  for (const i of order) {
    const n = lengths[i];
    let width = Math.max(longest, n);
    if (current.length && (current.length >= batchSize || (current.length + 1) * width > maxBatchTokens)) {
      batches.push(current);
      current = [];
      width = n;
    }
    current.push(i);
    longest = width;
  }
  if (current.length) batches.push(current);
  return batches;
}
