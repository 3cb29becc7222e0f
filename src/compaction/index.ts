export type { TokenCounter } from './tokenCounter.js';
export { bpeTokenCounter, countItemTokens } from './tokenCounter.js';
export type {
  CompactionRequest,
  CompactionResult,
  Compactor,
  ContextSlot,
} from './compactor.js';
export { SLOT_PRIORITY, MAX_SLOT_PRIORITY } from './compactor.js';
export type { RelevanceCompactorOptions } from './relevanceCompactor.js';
export { createRelevanceCompactor } from './relevanceCompactor.js';
export { SUMMARY_ID } from './summary.js';
export { createMemoTokenCounter, type MemoLimits } from './memoTokenCounter.js';
