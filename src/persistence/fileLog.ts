import * as zlib from 'node:zlib';
import { CorruptLogError } from '../errors.js';

/**
 * The framing of the embedded store's log. A frame is
 *
 *   magic (4 bytes) | payload length (u32 BE) | CRC32 of length bytes + payload (u32 BE) | payload
 *
 * The magic starts with 0xFE, a byte that never occurs in UTF-8, so it cannot appear inside a JSON
 * payload: a scan that resynchronises on it only finds real frame starts. It also makes zero-filled
 * space (what some filesystems leave after a crash) fail fast instead of decoding as an empty frame.
 */
export const FRAME_MAGIC = Buffer.from([0xfe, 0x4a, 0x50, 0x4c]);
export const FRAME_HEADER_BYTES = 12;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Table-driven CRC32 (IEEE), continuing from `value`; used where node:zlib has no crc32. */
export function crc32Fallback(data: Uint8Array, value = 0): number {
  let crc = (value ^ 0xffffffff) >>> 0;
  for (const byte of data) crc = (CRC_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** CRC32 (IEEE): node:zlib's native one when present (Node >= 20.15), else the table fallback. */
export const crc32: (data: Uint8Array, value?: number) => number =
  typeof zlib.crc32 === 'function' ? (data, value) => zlib.crc32(data, value) : crc32Fallback;

/** Frames `payload` (UTF-8 JSON text) for the log. */
export function encodeFrame(payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  FRAME_MAGIC.copy(frame, 0);
  frame.writeUInt32BE(body.length, 4);
  frame.writeUInt32BE(crc32(body, crc32(frame.subarray(4, 8))), 8);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

type Decoded = { ok: true; payload: Buffer; end: number } | { ok: false; reason: string };

/** Decodes the frame starting at `offset`, checking magic, length and checksum. */
export function decodeFrame(buf: Buffer, offset: number): Decoded {
  if (buf.length - offset < FRAME_HEADER_BYTES) return { ok: false, reason: 'incomplete header' };
  if (!buf.subarray(offset, offset + 4).equals(FRAME_MAGIC)) return { ok: false, reason: 'bad magic' };
  const length = buf.readUInt32BE(offset + 4);
  const end = offset + FRAME_HEADER_BYTES + length;
  if (end > buf.length) return { ok: false, reason: `length ${length} runs past the end of the log` };
  const payload = buf.subarray(offset + FRAME_HEADER_BYTES, end);
  const expected = buf.readUInt32BE(offset + 8);
  if (crc32(payload, crc32(buf.subarray(offset + 4, offset + 8))) !== expected) {
    return { ok: false, reason: 'checksum mismatch' };
  }
  return { ok: true, payload, end };
}

/** Whether any intact frame starts after `offset`. */
function intactFrameAfter(buf: Buffer, offset: number): boolean {
  for (let at = buf.indexOf(FRAME_MAGIC, offset); at !== -1; at = buf.indexOf(FRAME_MAGIC, at + 1)) {
    if (decodeFrame(buf, at).ok) return true;
  }
  return false;
}

/** A frame found by {@link scanLog}: its byte offset and payload. */
export interface ScannedFrame {
  offset: number;
  payload: Buffer;
}

/**
 * Splits a log into frames. A bad frame with nothing intact after it is a torn tail (a crash
 * mid-write, before the write was acknowledged): scanning stops and `validEnd` says where to cut.
 * A bad frame followed by an intact one is damage to acknowledged history, which is never
 * dropped silently: it throws CorruptLogError with the byte offset.
 */
export function scanLog(buf: Buffer, name = 'log'): { frames: ScannedFrame[]; validEnd: number } {
  const frames: ScannedFrame[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const decoded = decodeFrame(buf, offset);
    if (!decoded.ok) {
      if (intactFrameAfter(buf, offset + 1)) {
        throw new CorruptLogError(
          `${name}: corrupt record at byte offset ${offset} (${decoded.reason}) is followed by intact records`,
        );
      }
      break;
    }
    frames.push({ offset, payload: decoded.payload });
    offset = decoded.end;
  }
  return { frames, validEnd: offset };
}
