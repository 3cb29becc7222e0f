import { open } from 'node:fs/promises';

/**
 * fsyncs a file or a directory: a directory after a file was created, renamed or cut in it, so
 * that the change survives a crash as well as the file's own bytes.
 */
export async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
