import { expect } from 'chai';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStorage } from '../src/store/filesystem-storage.js';

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
});
