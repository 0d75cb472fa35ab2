/**
 * `/modalities/{id}/query` and `/queries` over real peers on loopback: a second pacsnode and a real Orthanc as
 * query/retrieve sources, C-MOVE to ourselves and to a DCMTK storescp, C-GET; asynchronous retrieve jobs cancelled,
 * paused and resumed, and resumed after a restart.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { identifierKeys } from '../src/app/queries.js';
import { Tags } from '../src/dicom/tag.js';
import { generateUid } from '../src/dicom/uids.js';
import type { Manufacturer } from '../src/modalities/registry.js';
import { Level } from '../src/store/levels.js';
import { makeInstance } from './helpers/factory.js';
import { freePort } from './helpers/interop.js';
import {
  call,
  ORTHANC_BINARY,
  startNode,
  startOrthanc,
  startSilentPeer,
  startStorescp,
  waitUntil,
  type Node,
  type Orthanc,
  type Storescp,
} from './helpers/networking.js';

const HAS_DCMTK = existsSync('/usr/bin/storescp');

type Answer = Record<string, string>;

function expectError(r: { status: number; json: Record<string, unknown> }, status: number, orthancError: string): void {
  expect(r.status, JSON.stringify(r.json)).to.equal(status);
  expect(r.json.OrthancError).to.equal(orthancError);
}

/** A study of `series` series of `perSeries` instances. */
function study(patientId: string, series: number, perSeries: number): { uid: string; files: Buffer[] } {
  const uid = generateUid();
  const files: Buffer[] = [];
  for (let s = 1; s <= series; s++) {
    const seriesUid = generateUid();
    for (let i = 1; i <= perSeries; i++) files.push(makeInstance({ patientId, studyInstanceUid: uid, seriesInstanceUid: seriesUid, seriesNumber: s, instanceNumber: i }));
  }
  return { uid, files };
}

describe('REST: /queries', function () {
  this.timeout(90000);
  let dir: string;
  let a: Node;
  let b: Node;
  let storescp: Storescp;
  const onB = study('QRB', 3, 2);

  const instancesOfStudy = async (node: Node, uid: string): Promise<number> => {
    const found = (await call(node.url, 'POST', '/tools/lookup', uid)).json as unknown as { ID: string; Type: string }[];
    const s = found.find((f) => f.Type === 'Study');
    return s ? ((await call(node.url, 'GET', `/studies/${s.ID}/instances`)).json as unknown[]).length : 0;
  };
  const forget = async (node: Node, uid: string) => {
    const found = (await call(node.url, 'POST', '/tools/lookup', uid)).json as unknown as { ID: string }[];
    for (const f of found) await call(node.url, 'DELETE', `/studies/${f.ID}`);
  };
  const query = async (modality: string, body: unknown): Promise<string> => {
    const r = await call(a.url, 'POST', `/modalities/${modality}/query`, body);
    expect(r.status, r.text).to.equal(200);
    expect(r.json.Path).to.equal(`/queries/${r.json.ID as unknown as string}`);
    return r.json.ID as unknown as string;
  };

  before(async function () {
    if (!HAS_DCMTK) this.skip(); // dcmtk is installed by .ci/run
    dir = mkdtempSync(join(tmpdir(), 'hc-queries-'));
    storescp = await startStorescp(join(dir, 'storescp'), 'STORESCP');
    a = await startNode('PACSA', { DicomScuTimeout: 5, QueryRetrieveSize: 100 });
    b = await startNode('PACSB', {
      DicomModalities: { a: ['PACSA', '127.0.0.1', a.dicomPort], storescp: ['STORESCP', '127.0.0.1', storescp.port] },
      DicomAlwaysAllowFind: false,
    });
    for (const f of onB.files) await call(b.url, 'POST', '/instances', f);
    await call(a.url, 'PUT', '/modalities/b', ['PACSB', '127.0.0.1', b.dicomPort]);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await storescp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a study query on a pacsnode: ID, level, modality, query, answers (expand, simplify), content', async () => {
    const id = await query('b', { Level: 'Study', Query: { PatientID: 'QRB', StudyDescription: '' } });
    expect((await call(a.url, 'GET', '/queries')).json).to.include(id);
    expect((await call(a.url, 'GET', `/queries/${id}`)).json).to.deep.equal(['answers', 'level', 'modality', 'query', 'retrieve']);
    expect((await call(a.url, 'GET', `/queries/${id}/level`)).text).to.equal('Study');
    expect((await call(a.url, 'GET', `/queries/${id}/modality`)).text).to.equal('b');
    expect((await call(a.url, 'GET', `/queries/${id}/query?simplify`)).json).to.deep.equal({ PatientID: 'QRB', StudyDescription: '' });
    expect((await call(a.url, 'GET', `/queries/${id}/query`)).json).to.deep.include({ '0010,0020': { Name: 'PatientID', Type: 'String', Value: 'QRB' } });
    expect((await call(a.url, 'GET', `/queries/${id}/answers`)).json).to.deep.equal(['0']);
    const [answer] = (await call(a.url, 'GET', `/queries/${id}/answers?expand&simplify`)).json as unknown as Answer[];
    expect(answer).to.include({ StudyInstanceUID: onB.uid, PatientID: 'QRB', QueryRetrieveLevel: 'STUDY', StudyDescription: 'Generated study' });
    expect(answer).to.have.property('AccessionNumber');
    const full = (await call(a.url, 'GET', `/queries/${id}/answers/0/content`)).json as unknown as Record<string, { Value: string }>;
    expect(full['0020,000d']!.Value).to.equal(onB.uid);
    expect((await call(a.url, 'GET', `/queries/${id}/answers/0`)).json).to.deep.equal(['content', 'retrieve', 'query-series', 'query-instances']);
    expectError(await call(a.url, 'GET', `/queries/${id}/answers/1/content`), 400, 'Parameter out of range');
    expect((await call(a.url, 'DELETE', `/queries/${id}`)).status).to.equal(200);
    expectError(await call(a.url, 'GET', `/queries/${id}/level`), 404, 'Unknown resource');
  });

  it('Normalize (default true) drops the attributes that do not belong to the level; false sends them', async () => {
    const normalized = await query('b', { Level: 'Study', Query: { StudyInstanceUID: onB.uid, SeriesDescription: '' } });
    const [kept] = (await call(a.url, 'GET', `/queries/${normalized}/answers?expand&simplify`)).json as unknown as Answer[];
    expect(kept).to.not.have.property('SeriesDescription');
    const raw = await query('b', { Level: 'Study', Query: { StudyInstanceUID: onB.uid, SeriesDescription: '' }, Normalize: false });
    expect((await call(a.url, 'GET', `/queries/${raw}/query?simplify`)).json).to.include({ SeriesDescription: '' });
    const [sent] = (await call(a.url, 'GET', `/queries/${raw}/answers?expand&simplify`)).json as unknown as Answer[];
    expect(sent).to.have.property('SeriesDescription');
  });

  it('adapts the Identifier to the modality\'s Manufacturer, as Orthanc', () => {
    const query = new Map([[Tags.StudyDate, '*'], [Tags.PatientName, '*'], [Tags.Modality, 'CT']]);
    const keys = (manufacturer: Manufacturer) => identifierKeys({ level: Level.Study, query, normalize: true, manufacturer });
    expect(keys('Generic')).to.deep.equal({ '0008,0020': '*', '0010,0010': '*', '0010,0020': '', '0008,0050': '', '0020,000d': '' });
    expect(keys('GenericNoWildcardInDates')).to.include({ '0008,0020': '', '0010,0010': '*' });
    expect(keys('GenericNoUniversalWildcard')).to.include({ '0008,0020': '', '0010,0010': '' });
    expect(keys('GE')).to.include({ '0010,0020': '*', '0008,0050': '*', '0020,000d': '*' });
    expect(identifierKeys({ level: Level.Study, query, normalize: false, manufacturer: 'Generic' })).to.include({ '0008,0060': 'CT' });
  });

  it('goes down from an answer: query-series, then query-instances (the parent\'s keys are kept)', async () => {
    const id = await query('b', { Level: 'Study', Query: { StudyInstanceUID: onB.uid } });
    const series = (await call(a.url, 'POST', `/queries/${id}/answers/0/query-series`, { Query: { SeriesNumber: '' } })).json.ID as unknown as string;
    expect((await call(a.url, 'GET', `/queries/${series}/level`)).text).to.equal('Series');
    const answers = (await call(a.url, 'GET', `/queries/${series}/answers?expand&simplify`)).json as unknown as Answer[];
    expect(answers.map((x) => x.SeriesNumber).sort()).to.deep.equal(['1', '2', '3']);
    expect((await call(a.url, 'GET', `/queries/${series}/query?simplify`)).json).to.include({ StudyInstanceUID: onB.uid });
    const instances = (await call(a.url, 'POST', `/queries/${series}/answers/0/query-instances`, {})).json.ID as unknown as string;
    expect((await call(a.url, 'GET', `/queries/${instances}/answers`)).json).to.have.length(2);
    expect((await call(a.url, 'POST', `/queries/${instances}/answers/0/query-series`, {})).status).to.equal(400);
  });

  it('retrieves with C-MOVE to ourselves (by default), with C-GET, and to a third party named in plain text', async () => {
    const id = await query('b', { Level: 'Study', Query: { StudyInstanceUID: onB.uid } });
    await forget(a, onB.uid);
    const moved = await call(a.url, 'POST', `/queries/${id}/retrieve`, '');
    expect(moved.status, moved.text).to.equal(200);
    expect(moved.json).to.include({ Description: 'REST API', LocalAet: 'PACSA', RemoteAet: 'PACSB', TargetAet: 'PACSA' });
    expect(moved.json.Query).to.deep.equal([{ '0008,0050': 'ACC0001', '0008,0052': 'STUDY', '0010,0020': 'QRB', '0020,000d': onB.uid }]);
    expect(await instancesOfStudy(a, onB.uid)).to.equal(6);

    await forget(a, onB.uid);
    const got = await call(a.url, 'POST', `/queries/${id}/retrieve`, { RetrieveMethod: 'C-GET' });
    expect(got.status, got.text).to.equal(200);
    expect(got.json).to.not.have.property('TargetAet');
    expect(await instancesOfStudy(a, onB.uid)).to.equal(6);

    // One answer of a series query, C-GET as the modality's own RetrieveMethod.
    await forget(a, onB.uid);
    await call(a.url, 'PUT', '/modalities/bget', { AET: 'PACSB', Host: '127.0.0.1', Port: b.dicomPort, RetrieveMethod: 'C-GET' });
    const series = await query('bget', { Level: 'Series', Query: { StudyInstanceUID: onB.uid, SeriesNumber: '2' } });
    const one = await call(a.url, 'POST', `/queries/${series}/answers/0/retrieve`, {});
    expect(one.status, one.text).to.equal(200);
    expect(await instancesOfStudy(a, onB.uid)).to.equal(2);
    await call(a.url, 'DELETE', '/modalities/bget');

    for (const f of readdirSync(storescp.dir)) rmSync(join(storescp.dir, f));
    const third = await call(a.url, 'POST', `/queries/${id}/retrieve`, 'STORESCP');
    expect(third.status, third.text).to.equal(200);
    expect(third.json).to.include({ TargetAet: 'STORESCP' });
    expect(readdirSync(storescp.dir)).to.have.length(6);
  });

  it('refuses bad input: unknown modality or query 404, malformed bodies 400, an unreachable node 500', async () => {
    expectError(await call(a.url, 'POST', '/modalities/nope/query', { Level: 'Study' }), 404, 'Accessing an inexistent item');
    for (const body of ['{', '[]', {}, { Level: 'Nope' }, { Level: 'Study', Query: [] }, { Level: 'Study', Query: { PatientID: 3 } }, { Level: 'Study', Query: { NotATag: 'x' } }, { Level: 'Study', Timeout: 'x' }]) {
      expect((await call(a.url, 'POST', '/modalities/b/query', body)).status, JSON.stringify(body)).to.equal(400);
    }
    expectError(await call(a.url, 'GET', '/queries/nope/answers'), 404, 'Unknown resource');
    expectError(await call(a.url, 'POST', '/queries/nope/retrieve', ''), 404, 'Unknown resource');
    const id = await query('b', { Level: 'Study', Query: { StudyInstanceUID: onB.uid } });
    expectError(await call(a.url, 'POST', `/queries/${id}/retrieve`, '{"TargetAet": 3}'), 400, 'Bad type for a parameter');
    expect((await call(a.url, 'POST', `/queries/${id}/retrieve`, { RetrieveMethod: 'C-FIND' })).status).to.equal(400);
    expect((await call(a.url, 'POST', `/queries/${id}/retrieve`, { Synchronous: 1 })).status).to.equal(400);
    expect((await call(a.url, 'POST', `/queries/${id}/retrieve`, '{bad')).status).to.equal(400);
    // A target that is not an AE title, as plain text or in the object: 400, no job.
    expect((await call(a.url, 'POST', `/queries/${id}/retrieve`, 'WAY_TOO_LONG_FOR_AN_AET')).status).to.equal(400);
    expect((await call(a.url, 'POST', `/queries/${id}/retrieve`, { TargetAet: 'A\\B' })).status).to.equal(400);
    await call(a.url, 'PUT', '/modalities/closed', ['NOBODY', '127.0.0.1', await freePort()]);
    const r = await call(a.url, 'POST', '/modalities/closed/query', { Level: 'Study' });
    expectError(r, 500, 'Error in the network protocol');
    expect(r.json.Details).to.match(/C-FIND SCU to AET "NOBODY"/);
    await call(a.url, 'DELETE', '/modalities/closed');
  });

  it('keeps at most QueryRetrieveSize queries, the least recently used forgotten first', async () => {
    const c = await startNode('PACSC', { QueryRetrieveSize: 2, DicomModalities: { b: ['PACSB', '127.0.0.1', b.dicomPort] } });
    await call(b.url, 'PUT', '/modalities/c', ['PACSC', '127.0.0.1', c.dicomPort]);
    try {
      const q = async () => (await call(c.url, 'POST', '/modalities/b/query', { Level: 'Patient' })).json.ID as unknown as string;
      const first = await q();
      const second = await q();
      await call(c.url, 'GET', `/queries/${first}/level`);
      const third = await q();
      expect((await call(c.url, 'GET', '/queries')).json).to.have.members([first, third]);
      expect((await call(c.url, 'GET', `/queries/${second}`)).status).to.equal(404);
    } finally {
      await call(b.url, 'DELETE', '/modalities/c');
      await c.close();
    }
  });

  describe('asynchronous retrieves', () => {
    let silent: { port: number; close(): Promise<void> };
    before(async () => {
      silent = await startSilentPeer();
    });
    after(async () => silent?.close());

    it('a running C-MOVE job is cancelled (C-CANCEL); a pending one paused, resumed and completed', async () => {
      // B's sub-operations go to a node that never answers: the C-MOVE stays under way (3 s, the DIMSE timeout)
      // until cancelled.
      const slowB = await startNode('PACSB2', { DicomModalities: { silent: ['SILENT', '127.0.0.1', silent.port] }, DicomScuTimeout: 3 });
      const c = await startNode('PACSC', { ConcurrentJobs: 1, DicomModalities: { b: ['PACSB', '127.0.0.1', b.dicomPort], slow: ['PACSB2', '127.0.0.1', slowB.dicomPort] } });
      await call(b.url, 'PUT', '/modalities/c', ['PACSC', '127.0.0.1', c.dicomPort]);
      await call(slowB.url, 'PUT', '/modalities/c', ['PACSC', '127.0.0.1', c.dicomPort]);
      try {
        for (const f of onB.files.slice(0, 2)) await call(slowB.url, 'POST', '/instances', f);
        const slowQuery = (await call(c.url, 'POST', '/modalities/slow/query', { Level: 'Study', Query: { StudyInstanceUID: onB.uid } })).json.ID as unknown as string;
        const running = (await call(c.url, 'POST', `/queries/${slowQuery}/retrieve`, { TargetAet: 'SILENT', Synchronous: false })).json.ID as unknown as string;
        await waitUntil(async () => (await call(c.url, 'GET', `/jobs/${running}`)).json.State === 'Running', 'the job to run');
        // Behind it (one job at a time): a retrieve from B, pending.
        const id = (await call(c.url, 'POST', '/modalities/b/query', { Level: 'Study', Query: { StudyInstanceUID: onB.uid } })).json.ID as unknown as string;
        const pending = (await call(c.url, 'POST', `/queries/${id}/retrieve`, { Synchronous: false })).json.ID as unknown as string;
        const toCancel = (await call(c.url, 'POST', `/queries/${id}/retrieve`, { Synchronous: false })).json.ID as unknown as string;
        expect((await call(c.url, 'POST', `/jobs/${pending}/pause`, {})).status).to.equal(200);
        expect((await call(c.url, 'GET', `/jobs/${pending}`)).json.State).to.equal('Paused');
        expect((await call(c.url, 'POST', `/jobs/${toCancel}/cancel`, {})).status).to.equal(200);
        expect((await call(c.url, 'POST', `/jobs/${running}/cancel`, {})).status).to.equal(200);
        await waitUntil(async () => (await call(c.url, 'GET', `/jobs/${running}`)).json.State === 'Failure', 'the cancelled job');
        const cancelled = (await call(c.url, 'GET', `/jobs/${running}`)).json as unknown as { ErrorCode: number; Type: string };
        expect(cancelled.Type).to.equal('DicomMoveScu');
        expect(cancelled.ErrorCode).to.equal(37); // CanceledJob
        expect((await call(c.url, 'GET', `/jobs/${toCancel}`)).json).to.include({ State: 'Failure', ErrorCode: 37 });
        expect((await call(c.url, 'GET', `/jobs/${pending}`)).json.State).to.equal('Paused');
        expect((await call(c.url, 'POST', `/jobs/${pending}/resume`, {})).status).to.equal(200);
        await waitUntil(async () => (await call(c.url, 'GET', `/jobs/${pending}`)).json.State === 'Success', 'the resumed job');
        expect(await instancesOfStudy(c, onB.uid)).to.equal(6);
      } finally {
        await call(b.url, 'DELETE', '/modalities/c');
        await c.close();
        await slowB.close();
      }
    });

    it('a retrieve job interrupted by a restart resumes in the next run', async () => {
      const keep = mkdtempSync(join(tmpdir(), 'hc-queries-restart-'));
      const dicomPort = await freePort();
      const overrides = {
        StorageDirectory: join(keep, 's'),
        IndexDirectory: join(keep, 's'),
        ConcurrentJobs: 1,
        DicomModalities: { b: ['PACSB', '127.0.0.1', b.dicomPort], silent: ['SILENT', '127.0.0.1', silent.port] },
      };
      await call(b.url, 'PUT', '/modalities/d', ['PACSD', '127.0.0.1', dicomPort]);
      const first = await startNode('PACSD', overrides);
      let id: string;
      let blocker: string;
      try {
        // A job that holds the only worker (a C-STORE to a node that never answers), and a C-GET retrieve behind it.
        await call(first.url, 'POST', '/instances', makeInstance({ patientId: 'BLOCK' }));
        const all = (await call(first.url, 'GET', '/instances')).json;
        // It fails after its Timeout (3 s): enough for the retrieve below to be queued behind it.
        blocker = (await call(first.url, 'POST', '/modalities/silent/store', { Resources: all, Synchronous: false, Timeout: 3 })).json.ID as unknown as string;
        await waitUntil(async () => (await call(first.url, 'GET', `/jobs/${blocker}`)).json.State === 'Running', 'the blocker');
        const q = (await call(first.url, 'POST', '/modalities/b/query', { Level: 'Series', Query: { StudyInstanceUID: onB.uid } })).json.ID as unknown as string;
        id = (await call(first.url, 'POST', `/queries/${q}/retrieve`, { RetrieveMethod: 'C-GET', Synchronous: false })).json.ID as unknown as string;
        expect((await call(first.url, 'GET', `/jobs/${id}`)).json.State).to.equal('Pending');
      } finally {
        await first.close(); // the index and the storage area are in `keep`: they stay
      }
      const second = await startNode('PACSD', overrides);
      try {
        await call(second.url, 'POST', `/jobs/${blocker}/cancel`, {});
        await waitUntil(async () => ['Success', 'Failure'].includes((await call(second.url, 'GET', `/jobs/${id}`)).json.State as unknown as string), 'the resumed retrieve');
        const job = (await call(second.url, 'GET', `/jobs/${id}`)).json as unknown as { State: string; Type: string; Content: { Query: unknown[] } };
        expect(job).to.include({ State: 'Success', Type: 'DicomGetScu' });
        expect(job.Content.Query).to.have.length(3);
        expect(await instancesOfStudy(second, onB.uid)).to.equal(6);
      } finally {
        await second.close();
        rmSync(keep, { recursive: true, force: true });
      }
      await call(b.url, 'DELETE', '/modalities/d');
    });
  });

  describe(existsSync(ORTHANC_BINARY) ? 'with a real Orthanc as the source' : `with a real Orthanc (skipped: ${ORTHANC_BINARY} is missing)`, () => {
    let orthanc: Orthanc;
    const onOrthanc = study('QRO', 2, 3);
    before(async function () {
      if (!existsSync(ORTHANC_BINARY)) this.skip();
      orthanc = await startOrthanc(join(dir, 'orthanc'), 'ORTHANCQR', {
        DicomModalities: { pacsa: ['PACSA', '127.0.0.1', a.dicomPort], storescp: ['STORESCP', '127.0.0.1', storescp.port] },
      });
      for (const f of onOrthanc.files) await fetch(`${orthanc.url}/instances`, { method: 'POST', body: f });
      await call(a.url, 'PUT', '/modalities/orthanc', { AET: 'ORTHANCQR', Host: '127.0.0.1', Port: orthanc.dicomPort });
    });
    after(async () => {
      await orthanc?.stop();
    });

    it('queries Orthanc and retrieves from it with C-MOVE and with C-GET', async () => {
      const id = await query('orthanc', { Level: 'Series', Query: { PatientID: 'QRO', Modality: '' } });
      const answers = (await call(a.url, 'GET', `/queries/${id}/answers?expand&simplify`)).json as unknown as Answer[];
      expect(answers).to.have.length(2);
      expect(answers.every((x) => x.QueryRetrieveLevel === 'SERIES' && x.StudyInstanceUID === onOrthanc.uid)).to.equal(true);
      const moved = await call(a.url, 'POST', `/queries/${id}/retrieve`, { TargetAet: 'PACSA', RetrieveMethod: 'C-MOVE' });
      expect(moved.status, moved.text + orthanc.log().slice(-2000)).to.equal(200);
      expect(await instancesOfStudy(a, onOrthanc.uid)).to.equal(6);
      await forget(a, onOrthanc.uid);
      const got = await call(a.url, 'POST', `/queries/${id}/retrieve`, { RetrieveMethod: 'C-GET' });
      expect(got.status, got.text + orthanc.log().slice(-2000)).to.equal(200);
      expect(await instancesOfStudy(a, onOrthanc.uid)).to.equal(6);
    });
  });
});
