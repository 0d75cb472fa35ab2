/**
 * Reading ZIP archives of DICOM files (POST /instances with a ZIP body). Entries are streamed one at a time
 * from a file. When the central directory is damaged (a truncated upload), the local headers are walked
 * instead, so every readable entry is still delivered and the damage is reported.
 */
import { open } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import yauzl from 'yauzl';

export interface ZipEntry {
  name: string;
  size: number;
  open(): Promise<Readable>;
}

export interface ZipWalkResult {
  /** Problems with the archive itself (not with one entry's content). */
  errors: string[];
}

const LOCAL_HEADER = 0x04034b50;

/** Calls `onEntry` for each file entry, in archive order; directories are skipped. */
export async function walkZip(path: string, onEntry: (entry: ZipEntry) => Promise<void>): Promise<ZipWalkResult> {
  let central: yauzl.ZipFile | undefined;
  try {
    central = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.open(path, { lazyEntries: true, autoClose: false, strictFileNames: false, validateEntrySizes: true }, (err, zip) =>
        err || !zip ? reject(err ?? new Error('cannot open ZIP')) : resolve(zip),
      ),
    );
  } catch (e) {
    return walkLocalHeaders(path, onEntry, `central directory unreadable (${(e as Error).message}); read the local headers instead`);
  }
  const zip = central;
  const errors: string[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', reject);
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        if (entry.fileName.endsWith('/')) {
          zip.readEntry();
          return;
        }
        const item: ZipEntry = {
          name: entry.fileName,
          size: entry.uncompressedSize,
          open: () =>
            new Promise<Readable>((res, rej) =>
              zip.openReadStream(entry, (err, stream) => (err || !stream ? rej(err ?? new Error('no stream')) : res(stream))),
            ),
        };
        onEntry(item).then(
          () => zip.readEntry(),
          (e: unknown) => reject(e),
        );
      });
      zip.readEntry();
    });
  } catch (e) {
    errors.push((e as Error).message);
  } finally {
    zip.close();
  }
  return { errors };
}

async function walkLocalHeaders(path: string, onEntry: (entry: ZipEntry) => Promise<void>, why: string): Promise<ZipWalkResult> {
  const errors = [why];
  const fh = await open(path, 'r');
  try {
    const { size: fileSize } = await fh.stat();
    let offset = 0;
    const header = Buffer.alloc(30);
    while (offset + 30 <= fileSize) {
      await fh.read(header, 0, 30, offset);
      if (header.readUInt32LE(0) !== LOCAL_HEADER) break;
      const flags = header.readUInt16LE(6);
      const method = header.readUInt16LE(8);
      const compressedSize = header.readUInt32LE(18);
      const uncompressedSize = header.readUInt32LE(22);
      const nameLength = header.readUInt16LE(26);
      const extraLength = header.readUInt16LE(28);
      const nameBuf = Buffer.alloc(nameLength);
      await fh.read(nameBuf, 0, nameLength, offset + 30);
      const name = nameBuf.toString('utf8');
      const dataStart = offset + 30 + nameLength + extraLength;
      if (flags & 0x08) {
        errors.push(`entry ${name}: sizes only in a data descriptor; cannot continue without the central directory`);
        break;
      }
      if (dataStart + compressedSize > fileSize) {
        errors.push(`entry ${name}: truncated`);
        break;
      }
      if (!name.endsWith('/')) {
        if (method !== 0 && method !== 8) {
          errors.push(`entry ${name}: unsupported compression method ${method}`);
        } else {
          const start = dataStart;
          const length = compressedSize;
          await onEntry({
            name,
            size: uncompressedSize,
            open: async () => {
              const raw = await readSlice(path, start, length);
              if (method === 0) return Readable.from([raw]);
              const out = new PassThrough();
              const inflate = createInflateRaw();
              inflate.on('error', (e) => out.destroy(e));
              inflate.pipe(out);
              inflate.end(raw);
              return out;
            },
          });
        }
      }
      offset = dataStart + compressedSize;
    }
  } finally {
    await fh.close();
  }
  return { errors };
}

async function readSlice(path: string, start: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, start);
    return buf;
  } finally {
    await fh.close();
  }
}
