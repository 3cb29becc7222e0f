import { createHash } from 'node:crypto';
import { DEFAULT_PREFIX } from './subjects.js';

/** The default stream's name. */
const DEFAULT_STREAM = 'JETPLAN';

/** `s` with what a consumer, bucket or key name cannot hold replaced by `_`. */
export const nameToken = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, '_');

/**
 * What sets a deployment's own resource names apart, from its stream and subject prefix: '' for the
 * defaults (the names deployments already have), else `_<stream>` and `_<prefix>_<hash>`, the hash
 * (8 hex digits of the prefix's SHA-256) because a name keeps only some of a prefix's characters.
 * Two deployments on one NATS must never share a consumer, a lease, snapshots or an executor inbox:
 * session and dispatch ids are only unique within a deployment.
 */
export function deploymentSuffix(streamName: string, subjectPrefix: string): { stream: string; prefix: string } {
  return {
    stream: streamName === DEFAULT_STREAM ? '' : `_${nameToken(streamName)}`,
    prefix: subjectPrefix === DEFAULT_PREFIX ? '' : `_${nameToken(subjectPrefix)}_${createHash('sha256').update(subjectPrefix).digest('hex').slice(0, 8)}`,
  };
}

/** The planner service's input consumer, lease key and snapshot bucket for a deployment. */
export function plannerNames(streamName: string, subjectPrefix: string): { durableName: string; leaseKey: string; snapshotBucket: string } {
  const own = deploymentSuffix(streamName, subjectPrefix);
  return {
    durableName: `jetplan-planner${own.prefix}`,
    // The lease key always named its stream (consumers are per stream; the lease bucket is not).
    leaseKey: `planner.${nameToken(streamName)}${own.prefix}`,
    snapshotBucket: `jetplan_snapshots${own.stream}${own.prefix}`,
  };
}

/** An executor fleet's default durable prefix and report inbox bucket for a deployment. */
export function executorNames(streamName: string, subjectPrefix: string): { durablePrefix: string; inboxBucket: string; claimsBucket: string } {
  const own = deploymentSuffix(streamName, subjectPrefix);
  const inboxBucket = `jetplan_exec_inbox${own.stream}${own.prefix}`;
  return {
    durablePrefix: `jetplan-exec${own.prefix}`,
    inboxBucket,
    claimsBucket: own.stream === '' && own.prefix === '' ? 'jetplan_exec_claims' : `${inboxBucket}_claims`,
  };
}
