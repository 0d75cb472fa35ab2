import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStorage } from '../src/store/filesystem-storage.js';
import { CachedStorage } from '../src/store/storage-cache.js';

/** The error code a promise rejects with (undefined when it resolves). */
async function failure(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (e as { code?: string }).code ?? String(e),
  );
}

// What the cache holds shows when the file is gone from the disk behind its back: a hit still answers.
describe('storage cache (MaximumStorageCacheSize)', function () {
  const KB = 1024;
  let root: string;
  let files: FilesystemStorage;
  let cache: CachedStorage;
  let serial = 0;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pacsnode-cache-'));
    files = new FilesystemStorage(root, { sync: false });
    cache = new CachedStorage(files, 100 * KB); // keeps files of up to 25 KB
  });
  afterEach(async () => {
    await cache.close();
    rmSync(root, { recursive: true, force: true });
  });

  const newUuid = () => `0a1b2c3d-0000-4000-8000-${String(++serial).padStart(12, '0')}`;
  const content = (size: number, seed: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff));
  /** Writes and publishes a file through the cache (which does not keep it). */
  async function write(uuid: string, bytes: Buffer): Promise<void> {
    const w = await cache.begin(uuid);
    await w.writeAll(bytes);
    w.publish();
  }

  /** A file written through the cache, then read once (what fills it). */
  async function put(size: number, seed = serial): Promise<{ uuid: string; bytes: Buffer }> {
    const uuid = newUuid();
    const bytes = content(size, seed);
    await write(uuid, bytes);
    expect((await cache.read(uuid)).equals(bytes)).to.equal(true);
    return { uuid, bytes };
  }
  const dropFromDisk = (uuid: string) => rmSync(files.pathOf(uuid));
  const cached = (uuid: string) => cache.read(uuid).then(() => true, () => false);

  it('answers a file read once from memory: read, readInto, readRange, the same bytes as written', async () => {
    const { uuid, bytes } = await put(20 * KB);
    dropFromDisk(uuid);
    expect((await cache.read(uuid)).equals(bytes)).to.equal(true);
    const target = Buffer.alloc(5 + bytes.length, 0xee);
    expect(await cache.readInto(uuid, target, 5, 0, bytes.length)).to.equal(bytes.length);
    expect(target.subarray(0, 5).equals(Buffer.alloc(5, 0xee))).to.equal(true);
    expect(target.subarray(5).equals(bytes)).to.equal(true);
    const part = Buffer.alloc(100);
    expect(await cache.readInto(uuid, part, 0, bytes.length - 40)).to.equal(40);
    expect(part.subarray(0, 40).equals(bytes.subarray(-40))).to.equal(true);
    expect((await cache.readRange(uuid, 1000, 1100)).equals(bytes.subarray(1000, 1100))).to.equal(true);
    expect(cache.usage).to.deep.equal({ bytes: bytes.length, files: 1 });
  });

  it('hands out copies: a caller changing what it got does not change what the next one reads', async () => {
    const { uuid, bytes } = await put(10 * KB);
    const first = await cache.read(uuid);
    first.fill(0);
    expect((await cache.read(uuid)).equals(bytes)).to.equal(true);
    // What readInto got is the caller's: changing it changes nothing kept.
    const uuid2 = newUuid();
    await write(uuid2, bytes);
    const target = Buffer.alloc(bytes.length);
    await cache.readInto(uuid2, target, 0, 0, bytes.length);
    target.fill(9);
    dropFromDisk(uuid2);
    expect((await cache.read(uuid2)).equals(bytes)).to.equal(true);
  });

  it('does not keep what is written: only reads fill it', async () => {
    const uuid = newUuid();
    await write(uuid, content(4 * KB, 7));
    expect(cache.usage).to.deep.equal({ bytes: 0, files: 0 });
    dropFromDisk(uuid);
    expect(await failure(cache.read(uuid))).to.equal('InexistentFile');
  });

  it('lets the least recently used files go first once full, and never keeps a file above a quarter of it', async () => {
    const written = [];
    for (let i = 0; i < 5; i++) written.push(await put(20 * KB)); // 100 KB: full
    expect(cache.usage).to.deep.equal({ bytes: 100 * KB, files: 5 });
    await cache.read(written[0]!.uuid); // the first becomes the most recently used
    const sixth = await put(20 * KB);
    for (const w of [...written, sixth]) dropFromDisk(w.uuid);
    expect(await cached(written[1]!.uuid)).to.equal(false); // the least recently used went
    for (const w of [written[0]!, ...written.slice(2), sixth]) expect(await cached(w.uuid), w.uuid).to.equal(true);
    expect(cache.usage).to.deep.equal({ bytes: 100 * KB, files: 5 });
    const large = await put(26 * KB);
    expect(cache.usage.files).to.equal(5);
    dropFromDisk(large.uuid);
    expect(await failure(cache.read(large.uuid))).to.equal('InexistentFile');
  });

  it('keeps whole-file reads only: readInto given the size and reading it all, or read', async () => {
    const uuid = newUuid();
    const bytes = content(8 * KB, 3);
    await write(uuid, bytes);
    await cache.readInto(uuid, Buffer.alloc(bytes.length), 0); // size unknown: not kept
    await cache.readInto(uuid, Buffer.alloc(100), 0, 0, bytes.length); // part of it: not kept
    await cache.readInto(uuid, Buffer.alloc(bytes.length), 0, 100, bytes.length); // from a position: not kept
    expect(cache.usage.files).to.equal(0);
    await cache.readInto(uuid, Buffer.alloc(bytes.length), 0, 0, bytes.length);
    expect(cache.usage).to.deep.equal({ bytes: bytes.length, files: 1 });
    dropFromDisk(uuid);
    expect((await cache.read(uuid)).equals(bytes)).to.equal(true);
  });

  it('does not bring back a file removed while it was being read, nor keep a file of the wrong size', async () => {
    const uuid = newUuid();
    const bytes = content(6 * KB, 11);
    await write(uuid, bytes);
    // The read starts (the disk read is under way), the file is removed, then the read ends: with the bytes, or
    // InexistentFile when the removal reached the disk first (both are right; what matters is what is kept).
    const reading = cache.read(uuid, bytes.length).then(
      (b) => b.equals(bytes),
      (e: unknown) => (e as { code?: string }).code,
    );
    const removing = cache.remove(uuid);
    expect(await reading).to.be.oneOf([true, 'InexistentFile']);
    await removing;
    expect(cache.usage).to.deep.equal({ bytes: 0, files: 0 });
    expect(await failure(cache.read(uuid))).to.equal('InexistentFile');
    // The same with readInto.
    const uuid2 = newUuid();
    await write(uuid2, bytes);
    const target = Buffer.alloc(bytes.length);
    const reading2 = cache.readInto(uuid2, target, 0, 0, bytes.length).then(
      (n) => n === bytes.length && target.equals(bytes),
      (e: unknown) => (e as { code?: string }).code,
    );
    const removing2 = cache.remove(uuid2);
    expect(await reading2).to.be.oneOf([true, 'InexistentFile']);
    await removing2;
    expect(cache.usage.files).to.equal(0);
    // A file shorter than the size given (cut on disk) is answered as read, not kept.
    const short = newUuid();
    await write(short, bytes.subarray(0, 1000));
    expect((await cache.read(short, bytes.length)).length).to.equal(1000);
    expect(cache.usage.files).to.equal(0);
  });

  it('forgets a removed file, and never holds an aborted write', async () => {
    const { uuid } = await put(4 * KB);
    await cache.remove(uuid);
    expect(await failure(cache.read(uuid))).to.equal('InexistentFile');
    const aborted = newUuid();
    const w = await cache.begin(aborted);
    await w.writeAll(content(4 * KB, 5));
    await w.abort();
    expect(await failure(cache.read(aborted))).to.equal('InexistentFile');
    expect(cache.usage).to.deep.equal({ bytes: 0, files: 0 });
  });
});
