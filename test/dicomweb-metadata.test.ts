/**
 * WADO-RS Retrieve Metadata over real HTTP: study, series and instance metadata in the three modes, BulkDataURIs
 * (absolute from Host / Forwarded / PublicRoot, or relative), the metadata cache (built in the background when a
 * series becomes stable or after a deletion, else on first read; rebuilt when the series changes), and bad input. Full-mode values are checked against DCMTK's dcm2json.
 */
import { expect } from 'chai';
import { api } from 'dicomweb-client';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error xhr2 has no type declarations
import XHR from 'xhr2';
import { createContext } from '../src/app/context.js';
import { buildConfig } from '../src/config/load.js';
import { Tags } from '../src/dicom/tag.js';
import { METADATA_CACHE_ATTACHMENT, metadataCacheStatus, metadataCacheWritten } from '../src/dicomweb/metadata.js';
import { readMultipart } from '../src/dicomweb/multipart.js';
import { buildHttpServer, startHttpServer } from '../src/rest/http-server.js';
import { Level } from '../src/store/levels.js';
import { ChangeType } from '../src/store/sqlite-index.js';
import type { ChangeEvent, DicomStore } from '../src/store/store.js';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';

type Attr = { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string };
type Json = Record<string, Attr>;

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

const ST = '1.2.826.0.1.3680043.8.498.201';
const SE = '1.2.826.0.1.3680043.8.498.201.1';
const SE2 = '1.2.826.0.1.3680043.8.498.201.2';

async function get(s: TestServer, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; type: string }> {
  const res = await fetch(`${s.url}${path}`, { headers: { Accept: 'application/dicom+json', ...headers } });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

async function metadata(s: TestServer, path: string, headers: Record<string, string> = {}): Promise<Json[]> {
  const a = await get(s, path, headers);
  expect(a.status, a.text).to.equal(200);
  expect(a.type).to.match(/^application\/dicom\+json/);
  return JSON.parse(a.text) as Json[];
}

/** A GET through node:http, which sends the Host header given (fetch does not). */
function rawGet(s: TestServer, path: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${s.url}${path}`, { headers: { Accept: 'application/dicom+json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${res.statusCode}: ${text}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** dicomweb-client's typings make the optional `request` hook required. */
const noRequest = <T extends object>(options: T) => options as T & { request: never };

const v = (ds: Json, tag: string) => ds[tag]?.Value?.[0];

function storeSeries(s: Pick<TestServer, 'ctx'>, series: string, count: number, spec: Parameters<typeof makeInstance>[0] = {}) {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      s.ctx.store.store(
        makeInstance({ studyInstanceUid: ST, seriesInstanceUid: series, sopInstanceUid: `${series}.${i + 1}`, instanceNumber: i + 1, pixelBytes: 2048, ...spec }),
        { kind: 'rest' },
      ),
    ),
  );
}

/** Resolves when the store reports the series stable (StableSeries). */
function stableSeries(store: DicomStore, publicId: string): Promise<void> {
  return new Promise((resolve) => {
    const listener = (event: ChangeEvent) => {
      if (event.changeType !== ChangeType.StableSeries || event.publicId !== publicId) return;
      store.off('change', listener);
      resolve();
    };
    store.on('change', listener);
  });
}

describe('DICOMweb WADO-RS metadata', function () {
  let s: TestServer;

  before(async function () {
    s = await tempServer();
    await storeSeries(s, SE, 3);
    await storeSeries(s, SE2, 1, { modality: 'SR' });
  });

  after(async () => s.close());

  it('answers a series as full datasets with BulkDataURIs on the host the client used', async function () {
    const list = await metadata(s, `/dicom-web/studies/${ST}/series/${SE}/metadata`);
    expect(list).to.have.length(3);
    const sops = list.map((d) => v(d, '00080018')).sort();
    expect(sops).to.deep.equal([`${SE}.1`, `${SE}.2`, `${SE}.3`]);
    const first = list.find((d) => v(d, '00080018') === `${SE}.1`)!;
    expect(first['00100010']).to.deep.equal({ vr: 'PN', Value: [{ Alphabetic: 'DOE^JOHN' }] });
    expect(v(first, '00280010')).to.be.a('number');
    expect(first['7FE00010']).to.deep.equal({ vr: 'OW', BulkDataURI: `${s.url}/dicom-web/studies/${ST}/series/${SE}/instances/${SE}.1/bulk/7fe00010` });
    // The Host header the client sent (a proxy passing it through) decides the URIs.
    const viaProxy = JSON.parse(await rawGet(s, `/dicom-web/studies/${ST}/series/${SE}/metadata`, { Host: 'viewer.example:8443', 'X-Forwarded-Proto': 'https' })) as Json[];
    expect(viaProxy[0]!['7FE00010']!.BulkDataURI).to.match(/^https:\/\/viewer\.example:8443\/dicom-web\/studies\//);
    const forwarded = await metadata(s, `/dicom-web/studies/${ST}/series/${SE}/metadata`, { Forwarded: 'for=1.2.3.4;proto=https;host="pacs.example"' });
    expect(forwarded[0]!['7FE00010']!.BulkDataURI).to.match(/^https:\/\/pacs\.example\/dicom-web\/studies\//);
  });

  it('writes the metadata cache on first read and rebuilds it when the series changes', async function () {
    const seriesRow = () => s.ctx.index.lookup(Level.Series, [{ tag: Tags.SeriesInstanceUID, level: Level.Series, kind: 'equal', value: SE, caseSensitive: true }])[0]!;
    await metadata(s, `/dicom-web/studies/${ST}/series/${SE}/metadata`);
    await metadataCacheWritten(s.ctx.store);
    const att = s.ctx.index.attachment(seriesRow().id, METADATA_CACHE_ATTACHMENT);
    expect(att, 'cache attachment').to.not.equal(undefined);
    // A second read serves the cache (same attachment, not rewritten).
    await metadata(s, `/dicom-web/studies/${ST}/series/${SE}/metadata`);
    await metadataCacheWritten(s.ctx.store);
    expect(s.ctx.index.attachment(seriesRow().id, METADATA_CACHE_ATTACHMENT)!.uuid).to.equal(att!.uuid);
    // A new instance: the answer has it, the cache is rewritten.
    await s.ctx.store.store(makeInstance({ studyInstanceUid: ST, seriesInstanceUid: SE, sopInstanceUid: `${SE}.4`, instanceNumber: 4 }), { kind: 'rest' });
    const after = await metadata(s, `/dicom-web/studies/${ST}/series/${SE}/metadata`);
    expect(after.map((d) => v(d, '00080018'))).to.include(`${SE}.4`);
    await metadataCacheWritten(s.ctx.store);
    expect(s.ctx.index.attachment(seriesRow().id, METADATA_CACHE_ATTACHMENT)!.uuid).to.not.equal(att!.uuid);
    // Deleted again: gone from the answer.
    const id = s.ctx.index.lookup(Level.Instance, [{ tag: Tags.SOPInstanceUID, level: Level.Instance, kind: 'equal', value: `${SE}.4`, caseSensitive: true }])[0]!;
    await s.ctx.store.delete(id.publicId);
    const again = await metadata(s, `/dicom-web/studies/${ST}/series/${SE}/metadata`);
    expect(again.map((d) => v(d, '00080018'))).to.not.include(`${SE}.4`);
    expect(again).to.have.length(3);
  });

  it('builds the cache in the background when a series becomes stable, before its first read', async function () {
    this.timeout(20000);
    const other = await tempServer({ StableAge: 1 });
    try {
      const builder = metadataCacheStatus(other.ctx.store).builder!;
      expect(builder, 'the context starts a builder').to.not.equal(undefined);
      const computed = () => metadataCacheStatus(other.ctx.store).computed;
      const path = `/dicom-web/studies/${ST}/series/${SE}/metadata`;
      // Ingest answers are not held by the cache: each comes back with nothing built nor scheduled.
      let seriesId = '';
      for (let i = 1; i <= 3; i++) {
        const r = await other.ctx.store.store(makeInstance({ studyInstanceUid: ST, seriesInstanceUid: SE, sopInstanceUid: `${SE}.${i}`, instanceNumber: i }), { kind: 'rest' });
        seriesId = r.ParentSeries;
        expect(builder.pending, 'nothing scheduled at ingest').to.equal(0);
        expect(computed()).to.equal(0);
      }
      const series = other.ctx.index.findByPublicId(seriesId)!;
      expect(other.ctx.index.attachment(series.id, METADATA_CACHE_ATTACHMENT)).to.equal(undefined);
      expect(other.ctx.store.isStable(seriesId)).to.equal(false);
      // StableSeries: the builder writes the cache.
      await stableSeries(other.ctx.store, seriesId);
      await builder.idle();
      const att = other.ctx.index.attachment(series.id, METADATA_CACHE_ATTACHMENT);
      expect(att, 'cache written before the first read').to.not.equal(undefined);
      expect(computed()).to.equal(1);
      // The first read is served from the cache: nothing computed, the attachment is the same.
      const first = await metadata(other, path);
      expect(first.map((d) => v(d, '00080018')).sort()).to.deep.equal([`${SE}.1`, `${SE}.2`, `${SE}.3`]);
      await metadataCacheWritten(other.ctx.store);
      expect(computed()).to.equal(1);
      expect(other.ctx.index.attachment(series.id, METADATA_CACHE_ATTACHMENT)!.uuid).to.equal(att!.uuid);
      // A deleted instance makes the cache stale; the builder rebuilds it once the series is quiet.
      const gone = other.ctx.index.children(series.id)[0]!;
      await other.ctx.store.delete(gone.publicId);
      expect(builder.pending, 'rebuild scheduled').to.equal(1);
      await builder.idle();
      expect(computed()).to.equal(2);
      const rebuilt = other.ctx.index.attachment(series.id, METADATA_CACHE_ATTACHMENT)!;
      expect(rebuilt.uuid).to.not.equal(att!.uuid);
      const after = await metadata(other, path);
      expect(after).to.have.length(2);
      expect(computed(), 'served from the rebuilt cache').to.equal(2);
      // A new instance: rebuilt at the next StableSeries, and the read before it is answered right.
      const added = await other.ctx.store.store(makeInstance({ studyInstanceUid: ST, seriesInstanceUid: SE, sopInstanceUid: `${SE}.9`, instanceNumber: 9 }), { kind: 'rest' });
      const stable = stableSeries(other.ctx.store, added.ParentSeries);
      expect(await metadata(other, path)).to.have.length(3);
      expect(computed(), 'a read that finds no current cache builds it').to.equal(3);
      await stable;
      await builder.idle();
      expect(computed(), 'current: the builder skips it').to.equal(3);
      // Deleting the whole series leaves nothing to build.
      await other.ctx.store.delete(seriesId, Level.Series);
      expect(builder.pending).to.equal(0);
    } finally {
      await other.close();
    }
  });

  it('serves the cache attachment after a restart, without rebuilding it', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'he1-metadata-'));
    const open = async () => {
      const { config } = buildConfig({}, 'test', { StorageDirectory: dir, IndexDirectory: dir, SyncStorageArea: false, HttpPort: 0, DicomPort: 0 });
      const ctx = await createContext(config);
      const http = buildHttpServer(ctx);
      const url = `http://127.0.0.1:${await startHttpServer(http, 0, '127.0.0.1')}`;
      return { ctx, url, close: async () => { await http.close(); await ctx.close(); } };
    };
    try {
      const one = await open();
      await storeSeries(one, SE, 2);
      const first = await fetch(`${one.url}/dicom-web/studies/${ST}/series/${SE}/metadata`).then((r) => r.text());
      await metadataCacheWritten(one.ctx.store);
      const series = one.ctx.index.lookup(Level.Series, [])[0]!;
      const uuid = one.ctx.index.attachment(series.id, METADATA_CACHE_ATTACHMENT)!.uuid;
      await one.close();
      const two = await open();
      try {
        const second = await fetch(`${two.url}/dicom-web/studies/${ST}/series/${SE}/metadata`).then((r) => r.text());
        await metadataCacheWritten(two.ctx.store);
        // Same answer (the port differs: the URIs follow the Host header).
        expect(second.split(two.url).join('')).to.equal(first.split(one.url).join(''));
        expect(two.ctx.index.attachment(series.id, METADATA_CACHE_ATTACHMENT)!.uuid).to.equal(uuid);
      } finally {
        await two.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers a study (every series) and an instance', async function () {
    const study = await metadata(s, `/dicom-web/studies/${ST}/metadata`);
    expect(study).to.have.length(4);
    expect(study.map((d) => v(d, '00080060')).sort()).to.deep.equal(['CT', 'CT', 'CT', 'SR']);
    const one = await metadata(s, `/dicom-web/studies/${ST}/series/${SE}/instances/${SE}.2/metadata`);
    expect(one).to.have.length(1);
    expect(v(one[0]!, '00080018')).to.equal(`${SE}.2`);
    expect(v(one[0]!, '00200013')).to.equal(2);
  });

  it('matches DCMTK dcm2json on a corpus file (private tags, sequences, numbers)', async function () {
    const file = readFileSync(join(CORPUS, 'CT_small.dcm'));
    await s.ctx.store.store(file, { kind: 'rest' });
    const r = spawnSync('dcm2json', [join(CORPUS, 'CT_small.dcm')], { encoding: 'utf8' });
    if (r.status !== 0) this.skip();
    const expected = JSON.parse(r.stdout) as Json;
    const st = v(expected, '0020000D') as string;
    const se = v(expected, '0020000E') as string;
    const [ours] = await metadata(s, `/dicom-web/studies/${st}/series/${se}/metadata`);
    let compared = 0;
    for (const [tag, attr] of Object.entries(expected)) {
      if (tag === '00080005' || attr.InlineBinary !== undefined || attr.BulkDataURI !== undefined || ['OB', 'OW', 'UN'].includes(attr.vr)) continue;
      expect(ours![tag], tag).to.not.equal(undefined);
      expect(ours![tag]!.vr, tag).to.equal(attr.vr);
      if (attr.vr === 'FL') {
        // Single precision: dcm2json prints 9 or 10 significant digits, the value is the same float.
        expect((ours![tag]!.Value as number[]).map(Math.fround), tag).to.deep.equal((attr.Value as number[]).map(Math.fround));
      } else if (attr.vr !== 'SQ') {
        expect(JSON.stringify(ours![tag]!.Value), tag).to.equal(JSON.stringify(attr.Value));
      }
      compared++;
    }
    expect(compared).to.be.greaterThan(50);
    // FL values as the shortest digits that read back to the same float32 (not the float64's digits).
    expect(ours!['00271041']!.Value).to.deep.equal([-77.20406]);
    expect(ours!['00271042']!.Value).to.deep.equal([-11.2]);
    expect(ours!['00431040']!.Value).to.deep.equal([178.07993]);
    expect(ours!['7FE00010']!.BulkDataURI).to.equal(`${s.url}/dicom-web/studies/${st}/series/${se}/instances/${v(expected, '00080018') as string}/bulk/7fe00010`);
  });

  it('writes relative URIs with RelativeUris, under PublicRoot when set', async function () {
    const other = await tempServer({ DicomWeb: { RelativeUris: true, PublicRoot: '/pacs/dicom-web/' } });
    try {
      await other.ctx.store.store(makeInstance({ studyInstanceUid: ST, seriesInstanceUid: SE, sopInstanceUid: `${SE}.1` }), { kind: 'rest' });
      const [d] = await metadata(other, `/dicom-web/studies/${ST}/series/${SE}/metadata`);
      expect(d!['7FE00010']!.BulkDataURI).to.equal(`/pacs/dicom-web/studies/${ST}/series/${SE}/instances/${SE}.1/bulk/7fe00010`);
    } finally {
      await other.close();
    }
  });

  it('answers main DICOM tags only in MainDicomTags mode, extrapolated tags in Extrapolate mode', async function () {
    const other = await tempServer({
      DicomWeb: {
        SeriesMetadata: 'MainDicomTags',
        StudiesMetadata: 'Extrapolate',
        StudiesMetadataExtrapolatedTags: ['Rows', 'InstanceNumber'],
        SeriesMetadataExtrapolatedTags: ['BitsAllocated'],
      },
    });
    try {
      await storeSeries(other, SE, 3);
      const [d] = await metadata(other, `/dicom-web/studies/${ST}/series/${SE}/metadata`);
      expect(v(d!, '00100010')).to.deep.equal({ Alphabetic: 'DOE^JOHN' });
      expect(v(d!, '0020000D')).to.equal(ST);
      expect(v(d!, '00080016')).to.equal('1.2.840.10008.5.1.4.1.1.2');
      expect(d!['00280010']).to.equal(undefined);
      expect(d!['7FE00010']).to.equal(undefined);
      const study = await metadata(other, `/dicom-web/studies/${ST}/metadata`);
      expect(study).to.have.length(3);
      // Shared by the instances sampled: given; different in each: not extrapolated (InstanceNumber is a main tag).
      expect(v(study[0]!, '00280010')).to.be.a('number');
      expect(v(study[0]!, '00280100')).to.equal(16);
      expect(study.map((x) => v(x, '00200013')).sort()).to.deep.equal([1, 2, 3]);
      expect(other.ctx.index.attachments(other.ctx.index.lookup(Level.Series, [])[0]!.id).map((a) => a.contentType)).to.not.include(METADATA_CACHE_ATTACHMENT);
    } finally {
      await other.close();
    }
  });

  it('gives no cache with EnableMetadataCache false', async function () {
    const other = await tempServer({ DicomWeb: { EnableMetadataCache: false } });
    try {
      await storeSeries(other, SE, 2);
      expect(await metadata(other, `/dicom-web/studies/${ST}/series/${SE}/metadata`)).to.have.length(2);
      const series = other.ctx.index.lookup(Level.Series, [])[0]!;
      expect(other.ctx.index.attachment(series.id, METADATA_CACHE_ATTACHMENT)).to.equal(undefined);
      expect(metadataCacheStatus(other.ctx.store).builder, 'no background builder').to.equal(undefined);
    } finally {
      await other.close();
    }
  });

  it('answers PS3.19 XML documents in a multipart/related when asked', async function () {
    const res = await fetch(`${s.url}/dicom-web/studies/${ST}/series/${SE}/metadata`, { headers: { Accept: 'multipart/related; type="application/dicom+xml"' } });
    expect(res.status).to.equal(200);
    const type = res.headers.get('content-type')!;
    expect(type).to.match(/^multipart\/related; type="application\/dicom\+xml"; boundary=/);
    const body = Buffer.from(await res.arrayBuffer());
    const docs: string[] = [];
    for await (const part of readMultipart((async function* () { yield body; })(), /boundary=(.+)$/.exec(type)![1]!)) {
      expect(part.headers.get('content-type')).to.equal('application/dicom+xml');
      let text = '';
      for await (const chunk of part.body) text += chunk.toString('utf8');
      docs.push(text);
    }
    expect(docs).to.have.length(3);
    expect(docs[0]).to.contain('<FamilyName>DOE</FamilyName>');
    expect(docs[0]).to.match(/<DicomAttribute tag="7FE00010" vr="OW" keyword="PixelData">\s*<BulkData uri="http:\/\/127\.0\.0\.1:\d+\/dicom-web\/studies\//);
  });

  it('serves the dicomweb-client package', async function () {
    (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XHR;
    const client = new api.DICOMwebClient({ url: `${s.url}/dicom-web`, singlepart: false });
    const series = (await client.retrieveSeriesMetadata(noRequest({ studyInstanceUID: ST, seriesInstanceUID: SE }))) as Json[];
    expect(series.map((d) => v(d, '00080018')).sort()).to.deep.equal([`${SE}.1`, `${SE}.2`, `${SE}.3`]);
    const study = (await client.retrieveStudyMetadata(noRequest({ studyInstanceUID: ST }))) as Json[];
    expect(study).to.have.length(4);
    const [one] = (await client.retrieveInstanceMetadata(noRequest({ studyInstanceUID: ST, seriesInstanceUID: SE, sopInstanceUID: `${SE}.3` }))) as Json[];
    expect(v(one!, '00200013')).to.equal(3);
  });

  it('refuses invalid UIDs (400), unknown resources (404) and other media types (406)', async function () {
    for (const path of [`/dicom-web/studies/abc/metadata`, `/dicom-web/studies/${ST}/series/1..2/metadata`, `/dicom-web/studies/${ST}/series/${SE}/instances/${'1'.repeat(65)}/metadata`]) {
      const a = await get(s, path);
      expect(a.status, path).to.equal(400);
      expect(JSON.parse(a.text).HttpStatus).to.equal(400);
    }
    const unknown = await get(s, '/dicom-web/studies/1.2.3.999/metadata');
    expect(unknown.status).to.equal(404);
    expect(JSON.parse(unknown.text).Details).to.equal('unknown study: 1.2.3.999');
    expect(JSON.parse((await get(s, `/dicom-web/studies/${ST}/series/1.2.3/metadata`)).text).Details).to.contain('unknown series');
    expect((await get(s, `/dicom-web/studies/${ST}/series/${SE}/instances/1.2.3/metadata`)).status).to.equal(404);
    expect((await get(s, `/dicom-web/studies/${ST}/metadata`, { Accept: 'image/jpeg' })).status).to.equal(406);
  });
});
