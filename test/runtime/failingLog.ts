import { vi } from 'vitest';
import { GroupCommitLog } from '../../src/persistence/groupCommitLog.js';

/** The private frame writer of the file store's log, reached for fault injection. */
interface FrameWriter {
  writeFrame(batch: ReadonlyArray<{ json: string }>): Promise<void>;
}

/**
 * Makes the file store's next frame write whose payload contains `text` fail with ENOSPC, as a
 * full disk would; the log is then poisoned like a real one. Returns the spy (restore it after).
 */
export function failFrameWith(text: string) {
  const proto = GroupCommitLog.prototype as unknown as FrameWriter;
  const original = proto.writeFrame;
  let failed = false;
  return vi.spyOn(proto, 'writeFrame').mockImplementation(function (this: FrameWriter, batch) {
    if (failed || !batch.some((entry) => entry.json.includes(text))) return original.call(this, batch);
    failed = true;
    return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  });
}
