/**
 * The streaming multipart reader and the media-type parsers of src/dicomweb/multipart.ts: every split of the input
 * into chunks gives the same parts, delimiters cut anywhere are found, look-alikes of the boundary inside the
 * content are content, a message without its close delimiter is truncated, and memory does not grow with the body.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import {
  closeDelimiter,
  isValidBoundary,
  MultipartError,
  parseAccept,
  parseMediaType,
  partHead,
  readMultipart,
  type MultipartPart,
} from '../src/dicomweb/multipart.js';

interface ReadPart {
  headers: Record<string, string>;
  body: Buffer;
}

async function* chunked(message: Buffer, cuts: readonly number[]): AsyncGenerator<Buffer> {
  let from = 0;
  for (const cut of cuts) {
    if (cut > from) yield message.subarray(from, cut);
    from = Math.max(from, cut);
  }
  if (from < message.length) yield message.subarray(from);
}

async function readAll(source: AsyncIterable<Buffer>, boundary: string): Promise<ReadPart[]> {
  const out: ReadPart[] = [];
  for await (const part of readMultipart(source, boundary)) {
    const chunks: Buffer[] = [];
    for await (const c of part.body) chunks.push(c);
    out.push({ headers: Object.fromEntries(part.headers), body: Buffer.concat(chunks) });
  }
  return out;
}

async function failure(run: () => Promise<unknown>): Promise<MultipartError> {
  try {
    await run();
  } catch (e) {
    expect(e).to.be.instanceOf(MultipartError);
    return e as MultipartError;
  }
  throw new Error('expected a MultipartError');
}

function message(boundary: string, bodies: Buffer[], options: { preamble?: string; epilogue?: string; close?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  if (options.preamble !== undefined) parts.push(Buffer.from(`${options.preamble}\r\n`));
  bodies.forEach((body, i) => {
    parts.push(partHead(boundary, { 'Content-Type': 'application/dicom', 'X-Index': i }, i === 0), body);
  });
  if (options.close !== false) parts.push(closeDelimiter(boundary));
  if (options.epilogue !== undefined) parts.push(Buffer.from(options.epilogue));
  return Buffer.concat(parts);
}

describe('multipart: media types and Accept', () => {
  it('reads parameters quoted or not, in any order, names case-insensitive', () => {
    const a = parseMediaType('Multipart/Related; type="application/dicom"; boundary=abc');
    const b = parseMediaType('multipart/related;BOUNDARY="abc";Type=application/dicom');
    for (const m of [a, b]) {
      expect(m.type).to.equal('multipart/related');
      expect(m.params.get('type')).to.equal('application/dicom');
      expect(m.params.get('boundary')).to.equal('abc');
    }
    const c = parseMediaType('multipart/related; boundary="a;b,c \\"d\\""; type=application/dicom');
    expect(c.params.get('boundary')).to.equal('a;b,c "d"');
    expect(c.params.get('type')).to.equal('application/dicom');
  });

  it('orders Accept ranges by q, keeps the given order for equal weights, drops q=0', () => {
    const list = parseAccept(
      'multipart/related; type="image/jpeg"; q=0.5, multipart/related; type="application/octet-stream"; transfer-syntax=*, application/json;q=0, */*;q=0.1',
    );
    expect(list.map((t) => [t.type, t.params.get('type') ?? '', t.q])).to.deep.equal([
      ['multipart/related', 'application/octet-stream', 1],
      ['multipart/related', 'image/jpeg', 0.5],
      ['*/*', '', 0.1],
    ]);
    expect(list[0]!.params.get('transfer-syntax')).to.equal('*');
    expect(parseAccept(undefined).map((t) => t.type)).to.deep.equal(['*/*']);
    expect(parseAccept('').map((t) => t.type)).to.deep.equal(['*/*']);
  });

  it('accepts the boundaries RFC 2046 allows (and longer ones, as Orthanc sends) and no other', () => {
    expect(isValidBoundary('abc')).to.equal(true);
    expect(isValidBoundary("a'()+_,-./:=? z")).to.equal(true);
    expect(isValidBoundary('a'.repeat(70))).to.equal(true);
    // Longer than RFC 2046's 70, as Orthanc's DICOMweb client sends them (two UUIDs joined by a dash).
    expect(isValidBoundary('8a1020bc-254a-44b1-b608-16442ad9baae-8a1020bc-254a-44b1-b608-16442ad9baae')).to.equal(true);
    expect(isValidBoundary('a'.repeat(201))).to.equal(false);
    expect(isValidBoundary('')).to.equal(false);
    expect(isValidBoundary('ends with space ')).to.equal(false);
    expect(isValidBoundary('a"b')).to.equal(false);
  });
});

describe('multipart: streaming reader', () => {
  const boundary = 'BoUnDaRy-42';
  // Bodies full of look-alikes: CR LF, dashes, the boundary not preceded by CR LF or followed by other text.
  const tricky = [
    Buffer.from(`--${boundary}\r\n--${boundary}x\r\n-${boundary}\r\r\n\r\n--BoUnDaRy-4`),
    Buffer.alloc(0),
    Buffer.from('\r'),
    Buffer.from(`\r\n--${boundary}-\r\n`.slice(0, -1)),
    randomBytes(300),
  ];

  it('gives the same parts for every split of the message into two and three chunks', async () => {
    const msg = message(boundary, tricky, { preamble: 'This is the preamble.', epilogue: 'and an epilogue\r\n' });
    const expected = tricky.map((b) => b.toString('hex'));
    for (let cut = 0; cut <= msg.length; cut++) {
      const parts = await readAll(chunked(msg, [cut]), boundary);
      expect(parts.map((p) => p.body.toString('hex')), `cut at ${cut}`).to.deep.equal(expected);
      expect(parts.map((p) => p.headers['x-index'])).to.deep.equal(['0', '1', '2', '3', '4']);
    }
    for (let a = 0; a <= msg.length; a += 7) {
      for (let b = a; b <= msg.length; b += 5) {
        const parts = await readAll(chunked(msg, [a, b]), boundary);
        expect(parts.map((p) => p.body.toString('hex')), `cuts at ${a}, ${b}`).to.deep.equal(expected);
      }
    }
  });

  it('reads a message delivered one byte at a time', async () => {
    const msg = message(boundary, tricky);
    const cuts = Array.from({ length: msg.length }, (_, i) => i + 1);
    const parts = await readAll(chunked(msg, cuts), boundary);
    expect(parts.map((p) => p.body.toString('hex'))).to.deep.equal(tricky.map((b) => b.toString('hex')));
  });

  it('accepts transport padding after a delimiter, a part without headers, and a first delimiter after a CR LF', async () => {
    const msg = Buffer.from(`\r\n--${boundary}  \t\r\n\r\nno headers\r\n--${boundary}\r\nA: 1\r\n b\r\n\r\nfolded\r\n--${boundary}-- \r\n`);
    const parts = await readAll(chunked(msg, [3, 20, 41]), boundary);
    expect(parts).to.deep.equal([
      { headers: {}, body: Buffer.from('no headers') },
      { headers: { a: '1 b' }, body: Buffer.from('folded') },
    ]);
  });

  it('skips the body a consumer leaves unread', async () => {
    const msg = message(boundary, [randomBytes(5000), Buffer.from('second')]);
    const seen: string[] = [];
    for await (const part of readMultipart(chunked(msg, [100, 2000, 4000]), boundary)) {
      if (part.index === 1) {
        const chunks: Buffer[] = [];
        for await (const c of part.body) chunks.push(c);
        seen.push(Buffer.concat(chunks).toString());
      } else {
        seen.push('skipped');
      }
    }
    expect(seen).to.deep.equal(['skipped', 'second']);
  });

  it('a message without its close delimiter is truncated: the parts before it are whole, the last one fails', async () => {
    const whole = message(boundary, [Buffer.from('first part'), Buffer.from('second part, cut')], { close: false });
    for (const msg of [whole, whole.subarray(0, whole.length - 4)]) {
      const bodies: string[] = [];
      const error = await failure(async () => {
        for await (const part of readMultipart(chunked(msg, [10]), boundary)) {
          const chunks: Buffer[] = [];
          for await (const c of part.body) chunks.push(c);
          bodies.push(Buffer.concat(chunks).toString());
        }
      });
      expect(error.kind).to.equal('truncated');
      expect(bodies).to.deep.equal(['first part']);
    }
    // Cut inside a header block.
    const cut = message(boundary, [Buffer.from('x')]).subarray(0, 20);
    expect((await failure(() => readAll(chunked(cut, []), boundary))).kind).to.equal('truncated');
  });

  it('a source failing inside a part (a client gone) fails the part and the message at once, and never spins', async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.from('--b\r\nContent-Type: application/dicom\r\n\r\nhello');
      await new Promise((r) => setTimeout(r, 5));
      throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    }
    for (const readBody of [true, false]) {
      const parts = readMultipart(failing(), 'b');
      const first = await parts.next();
      expect(first.done).to.equal(false);
      if (readBody) {
        let bodyError: unknown;
        try {
          for await (const chunk of (first.value as MultipartPart).body) expect(chunk.toString()).to.equal('hello');
        } catch (e) {
          bodyError = e;
        }
        expect((bodyError as Error).message).to.equal('aborted');
      }
      // Before the fix, asking for the next part here looped on the finished scan without end (a hang, not a failure).
      let nextError: unknown;
      try {
        await parts.next();
      } catch (e) {
        nextError = e;
      }
      expect((nextError as Error).message, `body read: ${readBody}`).to.equal('aborted');
    }
  });

  it('a body without the boundary is refused, whatever its chunking', async () => {
    const msg = message(boundary, [Buffer.from('content')]);
    for (const cuts of [[], [5], [1, 2, 3]]) {
      expect((await failure(() => readAll(chunked(msg, cuts), 'another-boundary'))).kind).to.equal('no-boundary');
    }
    expect((await failure(() => readAll(chunked(Buffer.alloc(0), []), boundary))).kind).to.equal('no-boundary');
  });

  it('a header block without an end, or too long, is refused', async () => {
    const msg = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\nX: ${'y'.repeat(100)}`);
    const error = await failure(async () => {
      for await (const part of readMultipart(chunked(msg, []), boundary, { maxHeaderBytes: 64 })) void part;
    });
    expect(error.kind).to.equal('bad-header');
    const noColon = Buffer.from(`--${boundary}\r\nnot a header\r\n\r\nbody\r\n--${boundary}--`);
    expect((await failure(() => readAll(chunked(noColon, []), boundary))).kind).to.equal('bad-header');
  });

  it('a message with only a close delimiter has no parts', async () => {
    expect(await readAll(chunked(Buffer.from(`--${boundary}--\r\n`), [4]), boundary)).to.deep.equal([]);
  });

  it('memory stays flat: 256 MB in 64 KB chunks come out as chunks no larger than what came in', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const partBytes = 64 * 1024 * 1024;
    async function* source(): AsyncGenerator<Buffer> {
      for (let p = 0; p < 4; p++) {
        yield partHead(boundary, { 'Content-Type': 'application/dicom' }, p === 0);
        for (let sent = 0; sent < partBytes; sent += chunk.length) yield chunk;
      }
      yield closeDelimiter(boundary);
    }
    let largest = 0;
    const sizes: number[] = [];
    for await (const part of readMultipart(source(), boundary) as AsyncIterable<MultipartPart>) {
      let size = 0;
      for await (const c of part.body) {
        largest = Math.max(largest, c.length);
        size += c.length;
      }
      sizes.push(size);
    }
    expect(sizes).to.deep.equal([partBytes, partBytes, partBytes, partBytes]);
    expect(largest).to.be.at.most(chunk.length + boundary.length + 8);
  });
});
