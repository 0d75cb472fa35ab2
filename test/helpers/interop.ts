/**
 * Shared by the peer suites (dcmjs-dimse, Orthanc) and the association fuzz test: ports, child processes, the
 * dataset part of a Part 10 file, an element-by-element comparison of two datasets that tolerates re-encoding,
 * and a census of a storage area.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { BINARY_VRS, STRING_VRS, type DataSet, type Element } from '../../src/dicom/dataset.js';
import { readPart10 } from '../../src/dicom/reader.js';
import type { AppContext } from '../../src/app/context.js';
import { Tags } from '../../src/dicom/tag.js';

/** A TCP port free right now (for peers that cannot listen on port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port (rejects after `ms`). */
export async function waitForPort(port: number, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
}

/** Runs a command to its end; DCMTK tools get TCP_NODELAY=1 (STYLE.md: Nagle stalls every response ~40 ms). */
export function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, TCP_NODELAY: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.on('error', (e) => (out += String(e)));
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** Polls until `condition` holds (rejects with `what` after `ms`). */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The dataset part of a Part 10 file (the bytes after the meta header). */
export function datasetBytes(file: Buffer): Buffer {
  return file.subarray(readPart10(file, { untilPixelData: true }).datasetOffset);
}

/** The instance pacsnode indexed under this SOP Instance UID, if any. */
export function findInstance(ctx: AppContext, sopInstanceUid: string): { id: number; publicId: string } | undefined {
  const [row] = ctx.index.lookup(3, [{ tag: Tags.SOPInstanceUID, level: 3, kind: 'equal', value: sopInstanceUid, caseSensitive: true }]);
  return row;
}

const isGroupLength = (tag: number) => (tag & 0xffff) === 0;

/** An element's value as a comparable string: decoded text, numbers, tags, or the bytes (little endian) of a blob. */
function comparable(ds: DataSet, el: Element): string {
  if (el.fragments) return el.fragments.map((f) => ds.bytes.toString('hex', f.offset, f.offset + f.length)).join('|');
  if (STRING_VRS.has(el.vr)) return JSON.stringify(ds.elementStrings(el));
  if (el.vr === 'AT') return JSON.stringify(ds.elementTags(el));
  if (!BINARY_VRS.has(el.vr)) {
    const numbers = ds.elementNumbers(el);
    if (numbers.length > 0 || el.length === 0) return JSON.stringify(numbers);
  }
  const bytes = ds.valueBytes(el);
  if (ds.littleEndian || el.vr !== 'OW') return bytes.toString('hex');
  // OW in big endian: the words swapped back.
  const copy = Buffer.from(bytes);
  copy.swap16();
  return copy.toString('hex');
}

/**
 * Element by element, sequence items included: the same tags (group lengths aside, and `ignore`d ones) with the
 * same decoded values. Survives a re-encoding (another transfer syntax, padding, VR from the dictionary).
 */
export function expectSameValues(expected: DataSet, actual: DataSet, where: string, ignore: ReadonlySet<number> = new Set()): void {
  const keep = (t: number) => !isGroupLength(t) && !ignore.has(t);
  const tagsE = [...expected.elements.keys()].filter(keep);
  const tagsA = [...actual.elements.keys()].filter(keep);
  const hex = (t: number) => t.toString(16).padStart(8, '0');
  expect(tagsA.map(hex), `${where}: tags`).to.deep.equal(tagsE.map(hex));
  for (const tag of tagsE) {
    const e = expected.elements.get(tag)!;
    const a = actual.elements.get(tag)!;
    const at = `${where} (${hex(tag)})`;
    if (e.items || a.items) {
      expect(a.items?.length ?? 0, `${at}: items`).to.equal(e.items?.length ?? 0);
      (e.items ?? []).forEach((item, i) => expectSameValues(item, a.items![i]!, `${at}[${i}]`, ignore));
      continue;
    }
    expect(comparable(actual, a), `${at}: value`).to.equal(comparable(expected, e));
  }
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The files of a storage area in Orthanc's layout (`ab/cd/<uuid>`), and the temporary ones left in it. */
export function storageCensus(root: string): { files: number; temporary: string[] } {
  let files = 0;
  const temporary: string[] = [];
  const walk = (dir: string, depth: number) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && depth < 2) walk(path, depth + 1);
      else if (entry.isFile() && depth === 2 && UUID_RE.test(entry.name)) files++;
      else if (entry.isFile() && depth === 2) temporary.push(path);
    }
  };
  walk(root, 0);
  return { files, temporary };
}
