/**
 * How a door hands an instance to the ingestion path: small inputs (nearly all) as one Buffer, large ones as a
 * stream. Shared by the REST upload and the C-STORE SCP.
 */
import { Readable } from 'node:stream';

/** Inputs up to this size are collected in memory; larger ones stream to the store. */
export const IN_MEMORY_INPUT = 1 << 20;

export interface TakenInput {
  /** The whole input (with the prefix) when it ended within the limit, else a stream replaying it then the rest. */
  input: Buffer | Readable;
  /** The first bytes read (with the prefix): enough to tell a ZIP from a DICOM file. */
  head: Buffer;
  /** True when nothing at all was read (prefix aside). */
  empty: boolean;
}

/**
 * Reads `source` up to `inMemoryLimit` bytes. `maxBytes` (0 = none) caps the whole input: `tooLarge()` is thrown
 * (or raised on the stream) beyond it.
 */
export async function takeInput(
  source: AsyncIterable<Buffer>,
  options: { prefix?: Buffer; inMemoryLimit?: number; maxBytes?: number; tooLarge?: () => Error } = {},
): Promise<TakenInput> {
  const limit = options.inMemoryLimit ?? IN_MEMORY_INPUT;
  const maxBytes = options.maxBytes ?? 0;
  const tooLarge = options.tooLarge ?? (() => new Error(`input larger than ${maxBytes} bytes`));
  const iterator = source[Symbol.asyncIterator]();
  const chunks: Buffer[] = options.prefix ? [options.prefix] : [];
  let size = 0;
  let ended = false;
  while (size < limit) {
    const { value, done } = await iterator.next();
    if (done) {
      ended = true;
      break;
    }
    chunks.push(value);
    size += value.length;
    if (maxBytes > 0 && size > maxBytes) throw tooLarge();
  }
  const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (ended) return { input: head, head, empty: size === 0 };
  async function* rest(): AsyncGenerator<Buffer> {
    yield head;
    let total = size;
    while (true) {
      const { value, done } = await iterator.next();
      if (done) return;
      total += value.length;
      if (maxBytes > 0 && total > maxBytes) throw tooLarge();
      yield value;
    }
  }
  return { input: Readable.from(rest()), head, empty: false };
}
