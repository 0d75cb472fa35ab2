import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStorage } from '../src/store/filesystem-storage.js';
import { shareWithReaders } from '../src/store/reader-pool.js';

// Every behaviour holds whichever thread writes: the calling thread (the default without fsync) or the writer
// threads (the default with fsync).
for (const variant of [
  { name: 'writes on the calling thread', options: { sync: false } },
  { name: 'writer threads, fsync', options: { sync: true } },
]) describe(`filesystem storage area (${variant.name})`, function () {
  let root: string;
  let storage: FilesystemStorage;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pacsnode-area-'));
    storage = new FilesystemStorage(root, variant.options);
  });
  afterEach(async () => {
    await storage.close();
    rmSync(root, { recursive: true, force: true });
  });

  const uuid = '0a1b2c3d-0000-4000-8000-00000000000a';

  it("asks the file system to spread its folders over the disk (ext4's T attribute) where the file system has it", () => {
    // Whether this file system takes the attribute at all: a scratch folder beside the area, set by chattr itself.
    const probe = mkdtempSync(join(tmpdir(), 'pacsnode-probe-'));
    try {
      const supported = spawnSync('chattr', ['+T', probe]).status === 0;
      const attrs = spawnSync('lsattr', ['-d', root], { encoding: 'utf8' });
      if (supported) expect(String(attrs.stdout).split(' ')[0]).to.include('T');
      else expect(existsSync(root)).to.equal(true); // elsewhere the area works without it
    } finally {
      rmSync(probe, { recursive: true, force: true });
    }
  });

  it('skips the recovery walk after a clean close, and walks after an unclean stop', async () => {
    const w = await storage.begin(uuid);
    await w.writeAll(Buffer.from('left behind'));
    w.keep();
    await storage.close();
    expect(existsSync(join(root, '.pacsnode-clean'))).to.equal(true);
    storage = new FilesystemStorage(root, variant.options);
    expect(await storage.recover(() => true)).to.deep.equal({ published: 0, discarded: 0 });
    // That start removed the marker: a crash now would be followed by a walk.
    storage = new FilesystemStorage(root, variant.options);
    expect(await storage.recover((u) => u === uuid)).to.deep.equal({ published: 1, discarded: 0 });
  });

  it('writes into a folder that was removed after a previous write (the folder cache is not trusted blindly)', async () => {
    const first = await storage.begin(uuid);
    await first.writeAll(Buffer.from('one'));
    first.publish();
    await storage.remove(uuid);
    rmSync(join(root, '0a'), { recursive: true, force: true }); // an external clean-up prunes the empty folders
    const other = '0a1b9999-0000-4000-8000-00000000000b';
    const second = await storage.begin(other);
    await second.writeAll(Buffer.from('two'));
    second.publish();
    expect(readFileSync(storage.pathOf(other), 'utf8')).to.equal('two');
  });

  it('keeps a committed write whose publication failed, for start-up recovery', async () => {
    const w = await storage.begin(uuid);
    await w.writeAll(Buffer.from('committed'));
    w.keep();
    await w.abort();
    expect(readdirSync(join(root, '0a', '1b'))).to.deep.equal([`${uuid}.tmp`]);
    const recovered = await storage.recover((u) => u === uuid);
    expect(recovered).to.deep.equal({ published: 1, discarded: 0 });
    expect(readFileSync(storage.pathOf(uuid), 'utf8')).to.equal('committed');
  });

  it('discards an aborted write and refuses names that are not UUIDs', async () => {
    const w = await storage.begin(uuid);
    await w.writeAll(Buffer.from('x'));
    await w.abort();
    expect(readdirSync(join(root, '0a', '1b'))).to.deep.equal([]);
    expect(existsSync(storage.pathOf(uuid))).to.equal(false);
    expect(() => storage.pathOf('../../etc/passwd')).to.throw(/not an attachment UUID/);
  });

  it('readInto: reads a file (or from a position) straight into a buffer at an offset, stops at its end', async () => {
    const content = Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 7) & 0xff));
    const w = await storage.begin(uuid);
    await w.writeAll(content);
    w.publish();
    // The whole file after a 5-byte prefix that must be left alone.
    const target = Buffer.alloc(5 + content.length, 0xee);
    expect(await storage.readInto(uuid, target, 5)).to.equal(content.length);
    expect(target.subarray(0, 5).equals(Buffer.alloc(5, 0xee))).to.equal(true);
    expect(target.subarray(5).equals(content)).to.equal(true);
    // A chunk from a position; a buffer larger than what is left gets what is left.
    const chunk = Buffer.alloc(1000);
    expect(await storage.readInto(uuid, chunk, 0, 1 << 20)).to.equal(1000);
    expect(chunk.equals(content.subarray(1 << 20, (1 << 20) + 1000))).to.equal(true);
    const tail = Buffer.alloc(100);
    expect(await storage.readInto(uuid, tail, 0, content.length - 40)).to.equal(40);
    expect(tail.subarray(0, 40).equals(content.subarray(-40))).to.equal(true);
    // A missing attachment is Orthanc's InexistentFile.
    const missing = '0a1b2c3d-0000-4000-8000-00000000000b';
    const error = await storage.readInto(missing, Buffer.alloc(1), 0).then(
      () => undefined,
      (e: unknown) => e as { code: string },
    );
    expect(error?.code).to.equal('InexistentFile');
  });

  it('read with the size the index knows: the same bytes; a file shorter than said is read whole; a missing one is InexistentFile', async () => {
    const content = Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 13) & 0xff));
    const w = await storage.begin(uuid);
    await w.writeAll(content);
    w.publish();
    expect((await storage.read(uuid, content.length)).equals(content)).to.equal(true);
    expect((await storage.read(uuid, content.length + 100)).equals(content)).to.equal(true);
    expect((await storage.read(uuid)).equals(content)).to.equal(true);
    const missing = '0a1b2c3d-0000-4000-8000-00000000000e';
    const error = await storage.read(missing, 10).then(
      () => undefined,
      (e: unknown) => e as { code: string },
    );
    expect(error?.code).to.equal('InexistentFile');
  });

  it('readInto shared memory: the reader threads read many files asked for together, each into its place', async () => {
    const uuids = Array.from({ length: 40 }, (_, i) => `0a1b${String(i).padStart(4, '0')}-0000-4000-8000-00000000000c`);
    const contents = uuids.map((_, i) => Buffer.alloc(1000 + i * 37, i + 1));
    for (const [i, u] of uuids.entries()) {
      const w = await storage.begin(u);
      await w.writeAll(contents[i]!);
      w.publish();
    }
    // One block of shared memory, cut in parts with a 3-byte prefix each (as WADO-RS's part heads).
    const memory = shareWithReaders(new SharedArrayBuffer(contents.reduce((n, c) => n + c.length + 3, 0)));
    let at = 0;
    const parts = contents.map((c) => {
      const part = Buffer.from(memory, at, c.length + 3);
      part.fill(0xee, 0, 3);
      at += part.length;
      return part;
    });
    // Missing files fail alone, as InexistentFile; the others are read.
    const missing = '0a1b9999-0000-4000-8000-00000000000d';
    const [counts, lost] = await Promise.all([
      Promise.all(uuids.map((u, i) => storage.readInto(u, parts[i]!, 3))),
      storage.readInto(missing, Buffer.from(memory, 0, 8), 0).then(
        () => undefined,
        (e: unknown) => e as { code: string },
      ),
    ]);
    expect(counts).to.deep.equal(contents.map((c) => c.length));
    parts.forEach((part, i) => {
      expect(part.subarray(0, 3).equals(Buffer.alloc(3, 0xee))).to.equal(true);
      expect(part.subarray(3).equals(contents[i]!)).to.equal(true);
    });
    expect(lost?.code).to.equal('InexistentFile');
    // From a position, and past the end of the file.
    const tail = Buffer.from(memory, 0, 100);
    expect(await storage.readInto(uuids[5]!, tail, 0, contents[5]!.length - 30)).to.equal(30);
    expect(tail.subarray(0, 30).equals(contents[5]!.subarray(-30))).to.equal(true);
    // Shared memory never made known to the readers is read on the event loop's pool, the same way.
    const other = Buffer.from(new SharedArrayBuffer(contents[7]!.length));
    expect(await storage.readInto(uuids[7]!, other, 0)).to.equal(contents[7]!.length);
    expect(other.equals(contents[7]!)).to.equal(true);
  });
});
