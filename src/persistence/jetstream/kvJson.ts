import type { KV } from '@nats-io/kv';

/**
 * The JSON value stored under `key`, or undefined when there is none: no entry, a delete or purge
 * marker, an empty value, or bytes that are not JSON. Callers validate the shape themselves.
 */
export async function readKvJson(kv: KV, key: string): Promise<unknown> {
  const entry = await kv.get(key);
  if (entry === null || entry.operation !== 'PUT' || entry.length === 0) return undefined;
  try {
    return entry.json<unknown>();
  } catch {
    return undefined;
  }
}
