/** Planning: free text in, planned tasks out. */
export { planText, MAX_INPUT_BYTES, DEFAULT_MAX_TASKS, type PlanTextOptions } from './planText.js';
