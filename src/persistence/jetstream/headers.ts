/** Header names jetplan sets on every event it publishes to JetStream. */
export const HEADER_EVENT_TYPE = 'Jetplan-Type';
export const HEADER_CORRELATION_ID = 'Jetplan-Correlation-Id';
export const HEADER_CAUSATION_ID = 'Jetplan-Causation-Id';

/** The headers above, as one object, for code that iterates them. */
export const JetplanHeaders = {
  type: HEADER_EVENT_TYPE,
  correlationId: HEADER_CORRELATION_ID,
  causationId: HEADER_CAUSATION_ID,
} as const;
