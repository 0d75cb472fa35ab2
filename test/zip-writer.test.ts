import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { walkZip } from '../src/core/zip.js';
import { ZipWriter, dosDateTime, type ZipWriterOptions } from '../src/core/zip-writer.js';

/** Collects everything written to a Writable. */
function memorySink(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

async function build(
  fill: (zip: ZipWriter) => Promise<void>,
  options: ZipWriterOptions = {},
): Promise<Buffer> {
  const { sink, bytes } = memorySink();
  const zip = new ZipWriter(sink, options);
  await fill(zip);
  const size = await zip.finish();
  const out = bytes();
  expect(out.length).to.equal(size);
  return out;
}

async function readBack(path: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = await walkZip(path, async (entry) => {
    const chunks: Buffer[] = [];
    for await (const c of await entry.open()) chunks.push(c as Buffer);
    out.set(entry.name, Buffer.concat(chunks));
  });
  expect(walk.errors).to.deep.equal([]);
  return out;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
}

describe('core/zip-writer: streaming ZIP', function () {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-zipw-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const payload = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed + 7) & 0xff));

  it('writes stored and deflated entries, from buffers and streams, that unzip, zipinfo and yauzl read back', async () => {
    const big = payload(300_000, 13);
    const zip = await build(async (z) => {
      await z.addBuffer('dir/a.txt', Buffer.from('hello\n'));
      await z.addStream('dir/sub/big.bin', Readable.from([big.subarray(0, 100_000), big.subarray(100_000)]), { size: big.length });
      await z.addStream('deflated.bin', Readable.from([big]), { method: 'deflate' });
      await z.addBuffer('deflated.txt', Buffer.from('abc'.repeat(1000)), { method: 'deflate' });
      await z.addBuffer('empty', Buffer.alloc(0));
      await z.addStream('empty-stream', Readable.from([]), { size: 0 });
      await z.addStream('naïve-ü.txt', Readable.from([Buffer.from('utf-8 name')]), { size: 10 });
    }, { comment: 'made by a test' });
    const path = join(dir, 'mixed.zip');
    writeFileSync(path, zip);

    const entries = await readBack(path);
    expect([...entries.keys()]).to.deep.equal([
      'dir/a.txt', 'dir/sub/big.bin', 'deflated.bin', 'deflated.txt', 'empty', 'empty-stream', 'naïve-ü.txt',
    ]);
    expect(entries.get('dir/sub/big.bin')!.equals(big)).to.equal(true);
    expect(entries.get('deflated.bin')!.equals(big)).to.equal(true);
    expect(entries.get('deflated.txt')!.toString()).to.equal('abc'.repeat(1000));
    expect(entries.get('naïve-ü.txt')!.toString()).to.equal('utf-8 name');

    const test = run('unzip', ['-t', path]);
    expect(test).to.include('No errors detected');
    const info = run('zipinfo', [path]);
    expect(info).to.match(/300000 bl stor .* dir\/sub\/big\.bin/);
    expect(info).to.match(/300000 bl defN .* deflated\.bin/);
    expect(run('unzip', ['-z', path])).to.include('made by a test');
  });

  it('puts CRC-32 and sizes of streamed entries in a signed data descriptor after the data (flag bit 3)', async () => {
    const data = payload(5000, 3);
    const zip = await build(async (z) => {
      await z.addStream('s.bin', Readable.from([data]), { size: data.length, date: new Date(2024, 0, 15, 10, 30, 42) });
    });
    // Local header: bit 3 set, CRC and sizes zero, no extra field (the size is known to be below 4 GiB).
    expect(zip.readUInt32LE(0)).to.equal(0x04034b50);
    expect(zip.readUInt16LE(6) & 0x08).to.equal(0x08);
    expect(zip.readUInt16LE(8)).to.equal(0); // stored
    expect([zip.readUInt32LE(14), zip.readUInt32LE(18), zip.readUInt32LE(22)]).to.deep.equal([0, 0, 0]);
    expect(zip.readUInt16LE(28)).to.equal(0);
    const { time, date } = dosDateTime(new Date(2024, 0, 15, 10, 30, 42));
    expect([zip.readUInt16LE(10), zip.readUInt16LE(12)]).to.deep.equal([time, date]);
    const dataStart = 30 + 's.bin'.length;
    expect(zip.subarray(dataStart, dataStart + data.length).equals(data)).to.equal(true);
    const d = dataStart + data.length;
    expect(zip.readUInt32LE(d)).to.equal(0x08074b50);
    expect(zip.readUInt32LE(d + 4)).to.equal(crc32(data) >>> 0);
    expect([zip.readUInt32LE(d + 8), zip.readUInt32LE(d + 12)]).to.deep.equal([data.length, data.length]);
    // The central record has them too.
    const c = d + 16;
    expect(zip.readUInt32LE(c)).to.equal(0x02014b50);
    expect(zip.readUInt32LE(c + 16)).to.equal(crc32(data) >>> 0);
    expect(zip.readUInt32LE(c + 20)).to.equal(data.length);
    expect(zip.readUInt32LE(c + 42)).to.equal(0); // local header offset
  });

  it('writes in-memory entries with CRC and sizes in the local header (no data descriptor)', async () => {
    const zip = await build((z) => z.addBuffer('m.txt', Buffer.from('memory')));
    expect(zip.readUInt16LE(6) & 0x08).to.equal(0);
    expect(zip.readUInt32LE(14)).to.equal(crc32(Buffer.from('memory')) >>> 0);
    expect([zip.readUInt32LE(18), zip.readUInt32LE(22)]).to.deep.equal([6, 6]);
    expect(zip.readUInt32LE(30 + 5 + 6)).to.equal(0x02014b50); // central directory right after the data
  });

  it('forced ZIP64: ZIP64 extra fields, end record and locator that unzip, zipinfo and yauzl accept', async () => {
    const data = payload(70_000, 5);
    const zip = await build(async (z) => {
      await z.addBuffer('a.bin', data);
      await z.addStream('b.bin', Readable.from([data]), { size: data.length });
      await z.addStream('c.bin', Readable.from([data]), { method: 'deflate' });
    }, { zip64: 'always' });
    const path = join(dir, 'forced64.zip');
    writeFileSync(path, zip);
    const entries = await readBack(path);
    expect([...entries.values()].every((b) => b.equals(data))).to.equal(true);
    expect(run('unzip', ['-t', path])).to.include('No errors detected');
    const info = run('zipinfo', ['-v', path]);
    expect(info.match(/PKWARE 64-bit sizes/g)?.length).to.equal(3);
    expect(info).to.match(/minimum software version required to extract:\s+4\.5/);
    // End records: ZIP64 end of central directory (56 bytes), locator (20), classic end (22) with maxed fields.
    const end = zip.length - 22;
    expect(zip.readUInt32LE(end)).to.equal(0x06054b50);
    expect(zip.readUInt16LE(end + 10)).to.equal(0xffff);
    expect(zip.readUInt32LE(end + 16)).to.equal(0xffffffff);
    expect(zip.readUInt32LE(end - 20)).to.equal(0x07064b50);
    const end64 = Number(zip.readBigUInt64LE(end - 20 + 8));
    expect(zip.readUInt32LE(end64)).to.equal(0x06064b50);
    expect(Number(zip.readBigUInt64LE(end64 + 32))).to.equal(3);
    // Streamed ZIP64 entries have an 8-byte-size data descriptor: 4 + 4 + 8 + 8 bytes.
    const bLocal = zip.indexOf(Buffer.from('b.bin'), 0) - 30;
    const bData = bLocal + 30 + 5 + zip.readUInt16LE(bLocal + 28);
    const desc = bData + data.length;
    expect(zip.readUInt32LE(desc)).to.equal(0x08074b50);
    expect(Number(zip.readBigUInt64LE(desc + 16))).to.equal(data.length);
    expect(zip.readUInt32LE(desc + 24)).to.equal(0x04034b50); // next local header right after
  });

  it('switches to ZIP64 past 65535 entries (count in the ZIP64 end record)', async function () {
    this.timeout(120000);
    const n = 70_000;
    const zip = await build(async (z) => {
      for (let i = 0; i < n; i++) await z.addBuffer(`f/${i}`, Buffer.from([i & 0xff]));
    });
    const path = join(dir, 'many.zip');
    writeFileSync(path, zip);
    const end = zip.length - 22;
    expect(zip.readUInt16LE(end + 10)).to.equal(0xffff);
    const end64 = Number(zip.readBigUInt64LE(end - 20 + 8));
    expect(zip.readUInt32LE(end64)).to.equal(0x06064b50);
    expect(Number(zip.readBigUInt64LE(end64 + 32))).to.equal(n);
    const names = run('zipinfo', ['-1', path]).trim().split('\n');
    expect(names.length).to.equal(n);
    expect(names[n - 1]).to.equal(`f/${n - 1}`);
    // yauzl reads the whole directory through the ZIP64 record (contents checked for the last entries only).
    let count = 0;
    const last = new Map<string, number>();
    const walk = await walkZip(path, async (entry) => {
      count++;
      if (count > n - 3) {
        const parts: Buffer[] = [];
        for await (const c of await entry.open()) parts.push(c as Buffer);
        last.set(entry.name, Buffer.concat(parts)[0]!);
      }
    });
    expect(walk.errors).to.deep.equal([]);
    expect(count).to.equal(n);
    expect(last.get('f/69999')).to.equal(69999 & 0xff);
    expect(run('unzip', ['-p', path, 'f/65536'])).to.equal(String.fromCharCode(65536 & 0xff));
  });

  it('writes an entry past 4 GiB and an entry at an offset past 4 GiB (synthetic stream, sparse file)', async function () {
    this.timeout(300000);
    // The big entry is zeros, sent as the same 1 MiB buffer again and again; the sink leaves holes in a sparse
    // file for those chunks, so the file on disk is the exact archive without materialising 4 GiB.
    const zero = Buffer.alloc(1 << 20);
    const chunks = 4096 + 3; // 4 GiB + 3 MiB
    const bigSize = chunks * zero.length;
    const path = join(dir, 'big.zip');
    const fd = openSync(path, 'w');
    let position = 0;
    const sink = new Writable({
      highWaterMark: 4 << 20,
      write(chunk: Buffer, _encoding, callback) {
        if (chunk !== zero) writeSync(fd, chunk, 0, chunk.length, position);
        position += chunk.length;
        callback();
      },
    });
    const zip = new ZipWriter(sink);
    await zip.addBuffer('first.txt', Buffer.from('first'));
    await zip.addStream('zeros.bin', Readable.from((function* () {
      for (let i = 0; i < chunks; i++) yield zero;
    })()));
    await zip.addStream('after.txt', Readable.from([Buffer.from('after the 4 GiB mark')]), { size: 20 });
    const size = await zip.finish();
    ftruncateSync(fd, size);
    closeSync(fd);
    expect(size).to.be.greaterThan(2 ** 32);

    const info = run('zipinfo', ['-v', path]);
    expect(info).to.match(new RegExp(`uncompressed size:\\s+${bigSize} bytes`));
    const offsets = [...info.matchAll(/offset of local header from start of archive:\s+(\d+)/g)].map((m) => Number(m[1]));
    expect(offsets).to.have.length(3);
    expect(offsets[2]).to.be.greaterThan(2 ** 32); // after.txt
    expect(run('unzip', ['-p', path, 'after.txt'])).to.equal('after the 4 GiB mark');
    expect(run('unzip', ['-p', path, 'first.txt'])).to.equal('first');
    // yauzl: the sizes and offsets from the ZIP64 fields.
    const sizes = new Map<string, number>();
    const walk = await walkZip(path, async (entry) => {
      sizes.set(entry.name, entry.size);
      if (entry.name === 'after.txt') {
        const parts: Buffer[] = [];
        for await (const c of await entry.open()) parts.push(c as Buffer);
        expect(Buffer.concat(parts).toString()).to.equal('after the 4 GiB mark');
      }
    });
    expect(walk.errors).to.deep.equal([]);
    expect(sizes.get('zeros.bin')).to.equal(bigSize);
    // The CRC-32 of the 4 GiB entry in the central record (unzip -t would take a minute to recompute it).
    let crc = 0;
    for (let i = 0; i < chunks; i++) crc = crc32(zero, crc);
    const crcs = [...info.matchAll(/32-bit CRC value \(hex\):\s+([0-9a-f]{8})/g)].map((m) => parseInt(m[1]!, 16));
    expect(crcs[1]).to.equal(crc >>> 0);
  });

  it('waits for the output to drain: memory stays bounded with a slow reader', async () => {
    const out = new PassThrough({ highWaterMark: 16 * 1024 });
    const zip = new ZipWriter(out);
    let maxBuffered = 0;
    let received = 0;
    const reading = (async () => {
      for await (const chunk of out) {
        received += (chunk as Buffer).length;
        maxBuffered = Math.max(maxBuffered, out.writableLength + out.readableLength);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const chunk = Buffer.alloc(64 * 1024, 1);
    await zip.addStream('x', Readable.from((function* () {
      for (let i = 0; i < 200; i++) yield chunk; // 12.5 MiB
    })()));
    const size = await zip.finish();
    await reading;
    expect(received).to.equal(size);
    // Never more than the buffer plus one chunk in flight, whatever the entry's size.
    expect(maxBuffered).to.be.at.most(16 * 1024 + 2 * chunk.length);
  });

  it('stops when the signal aborts and destroys the entry\'s source', async () => {
    const ac = new AbortController();
    const out = new PassThrough();
    out.resume();
    const zip = new ZipWriter(out, { signal: ac.signal });
    let produced = 0;
    const source = new Readable({
      read() {
        produced++;
        if (produced === 5) ac.abort(new Error('stop now'));
        this.push(Buffer.alloc(1024));
      },
    });
    let error: unknown;
    try {
      await zip.addStream('endless', source);
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).to.equal('stop now');
    expect(source.destroyed).to.equal(true);
    expect(produced).to.be.lessThan(10);
    let again: unknown;
    try {
      await zip.addBuffer('more', Buffer.from('x'));
    } catch (e) {
      again = e;
    }
    expect((again as Error).message).to.equal('stop now');
  });

  it('rejects instead of hanging when the output is destroyed mid-entry', async () => {
    const out = new PassThrough({ highWaterMark: 1024 }); // nobody reads: the writer must wait for drain
    const zip = new ZipWriter(out);
    const source = new Readable({
      read() {
        this.push(Buffer.alloc(4096));
      },
    });
    const writing = zip.addStream('stuck', source);
    setTimeout(() => out.destroy(), 20);
    let error: unknown;
    try {
      await writing;
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).to.equal('ZIP output closed');
    expect(source.destroyed).to.equal(true);
  });

  it('takes one entry at a time', async () => {
    const { sink } = memorySink();
    const zip = new ZipWriter(sink);
    const slow = new Readable({ read() {} });
    const first = zip.addStream('a', slow);
    let error: unknown;
    try {
      await zip.addBuffer('b', Buffer.from('b'));
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).to.match(/one entry at a time/);
    slow.push(null);
    await first;
    await zip.finish();
    let late: unknown;
    try {
      await zip.addBuffer('c', Buffer.from('c'));
    } catch (e) {
      late = e;
    }
    expect((late as Error).message).to.match(/already finished/);
  });
});
