/**
 * `/modalities` over real peers on loopback: DCMTK storescp as the C-STORE target, a second pacsnode as the
 * C-MOVE / C-GET source, a closed port and a silent TCP peer as unreachable nodes.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { generateUid } from '../src/dicom/uids.js';
import { makeInstance } from './helpers/factory.js';
import { datasetBytes, freePort } from './helpers/interop.js';
import { HAS_OPENSSL, makePki } from './helpers/pki.js';
import { call, startNode, startSilentPeer, startStorescp, waitUntil, type Node, type Storescp } from './helpers/networking.js';

const HAS_DCMTK = existsSync('/usr/bin/storescp');

function expectError(r: { status: number; json: Record<string, unknown> }, status: number, orthancError: string): void {
  expect(r.status, JSON.stringify(r.json)).to.equal(status);
  expect(r.json.HttpStatus).to.equal(status);
  expect(r.json.OrthancError).to.equal(orthancError);
}

describe('REST: /modalities', function () {
  this.timeout(60000);
  let dir: string;
  let a: Node;
  let storescp: Storescp;
  const study = generateUid();
  const series = generateUid();
  const files = [1, 2, 3].map((n) => makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, instanceNumber: n, patientId: 'MOD1' }));
  let ids: { instances: string[]; study: string; patient: string };

  before(async function () {
    if (!HAS_DCMTK) this.skip(); // dcmtk is installed by .ci/run
    dir = mkdtempSync(join(tmpdir(), 'hc-modalities-'));
    storescp = await startStorescp(join(dir, 'storescp'), 'STORESCP');
    a = await startNode('PACSA', {
      DicomModalities: { storescp: ['STORESCP', '127.0.0.1', storescp.port], closed: ['NOBODY', '127.0.0.1', await freePort()] },
      LogExportedResources: true,
      DicomScuTimeout: 5,
    });
    const instances: string[] = [];
    for (const f of files) instances.push((await call(a.url, 'POST', '/instances', f)).json.ID as unknown as string);
    const first = (await call(a.url, 'POST', '/instances', files[0])).json as unknown as { ParentStudy: string; ParentPatient: string };
    ids = { instances, study: first.ParentStudy, patient: first.ParentPatient };
  });
  after(async () => {
    await a?.close();
    await storescp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const received = () => readdirSync(storescp.dir).filter((f) => !f.startsWith('.'));
  const clearReceived = () => {
    for (const f of received()) rmSync(join(storescp.dir, f));
  };

  describe('the registry', () => {
    it('lists the modalities, expanded in the long form; GET /modalities/{id} lists the operations; unknown is 404', async () => {
      expect((await call(a.url, 'GET', '/modalities')).json).to.deep.equal(['closed', 'storescp']);
      const expanded = (await call(a.url, 'GET', '/modalities?expand')).json as unknown as Record<string, Record<string, unknown>>;
      expect(expanded.storescp).to.include({ AET: 'STORESCP', Host: '127.0.0.1', Port: storescp.port, Manufacturer: 'Generic', AllowEcho: true });
      expect((await call(a.url, 'GET', '/modalities/storescp')).json).to.include.members(['echo', 'store', 'query', 'move', 'get']);
      expect((await call(a.url, 'GET', '/modalities/storescp/configuration')).json).to.include({ AET: 'STORESCP', RetrieveMethod: 'SystemDefault' });
      expectError(await call(a.url, 'GET', '/modalities/nope'), 404, 'Accessing an inexistent item');
      expectError(await call(a.url, 'GET', '/modalities/nope/configuration'), 404, 'Accessing an inexistent item');
    });

    it('PUT defines a modality in the short or long form, DELETE removes it; bad bodies are 400 and change nothing', async () => {
      expect((await call(a.url, 'PUT', '/modalities/short', ['SHORT', 'localhost', 104])).status).to.equal(200);
      expect((await call(a.url, 'GET', '/modalities/short/configuration')).json).to.include({ AET: 'SHORT', Host: 'localhost', Port: 104 });
      const long = { AET: 'LONG', Host: '10.0.0.1', Port: '4242', AllowStore: false, LocalAet: 'ME', Timeout: 3, RetrieveMethod: 'C-GET', Manufacturer: 'GE' };
      expect((await call(a.url, 'PUT', '/modalities/long', long)).status).to.equal(200);
      expect((await call(a.url, 'GET', '/modalities/long/configuration')).json).to.include({
        AET: 'LONG', Port: 4242, AllowStore: false, AllowEcho: true, LocalAet: 'ME', Timeout: 3, RetrieveMethod: 'C-GET', Manufacturer: 'GE',
      });
      for (const bad of ['not json', '["A"]', '{"AET":"A","Host":"h","Port":70000}', '{"AET":"A","Host":"h","Port":1,"AllowEcho":"yes"}', '{"AET":"A","Host":"h","Port":1,"RetrieveMethod":"C-FIND"}', '{"AET":"A","Host":"h","Port":1,"Manufacturer":"Nope"}']) {
        const r = await call(a.url, 'PUT', '/modalities/long', bad);
        expect(r.status, bad).to.equal(400);
      }
      expect((await call(a.url, 'PUT', '/modalities/bad%20name', ['X', 'h', 1])).status).to.equal(400);
      expect((await call(a.url, 'GET', '/modalities/long/configuration')).json).to.include({ AET: 'LONG', Port: 4242 });
      expect((await call(a.url, 'DELETE', '/modalities/short')).status).to.equal(200);
      expect((await call(a.url, 'DELETE', '/modalities/long')).status).to.equal(200);
      expectError(await call(a.url, 'DELETE', '/modalities/long'), 404, 'Accessing an inexistent item');
      expect((await call(a.url, 'GET', '/modalities')).json).to.deep.equal(['closed', 'storescp']);
    });

    it('with DicomModalitiesInDatabase, modalities changed over REST survive a restart (the file\'s are ignored)', async () => {
      const keep = mkdtempSync(join(tmpdir(), 'hc-modalities-db-'));
      const overrides = { StorageDirectory: join(keep, 's'), IndexDirectory: join(keep, 's'), DicomModalitiesInDatabase: true, DicomModalities: { fromfile: ['F', 'h', 1] } };
      const first = await startNode('PACSDB', overrides);
      try {
        expect((await call(first.url, 'GET', '/modalities')).json).to.deep.equal([]);
        await call(first.url, 'PUT', '/modalities/kept', { AET: 'KEPT', Host: '127.0.0.1', Port: 1234, AllowGet: false });
        await call(first.url, 'PUT', '/modalities/gone', ['GONE', '127.0.0.1', 1235]);
        await call(first.url, 'DELETE', '/modalities/gone');
      } finally {
        await first.http.close();
        await first.scp.close(1000);
        await first.ctx.close();
      }
      const second = await startNode('PACSDB', overrides);
      try {
        expect((await call(second.url, 'GET', '/modalities')).json).to.deep.equal(['kept']);
        expect((await call(second.url, 'GET', '/modalities/kept/configuration')).json).to.include({ AET: 'KEPT', Port: 1234, AllowGet: false });
      } finally {
        await second.close();
        rmSync(keep, { recursive: true, force: true });
      }
    });
  });

  describe('C-ECHO', () => {
    it('POST /modalities/{id}/echo answers {} when the node answers; /tools/dicom-echo takes the node in the body', async () => {
      const r = await call(a.url, 'POST', '/modalities/storescp/echo', '');
      expect(r.status).to.equal(200);
      expect(r.json).to.deep.equal({});
      expect((await call(a.url, 'POST', '/modalities/storescp/echo', { Timeout: 0 })).status).to.equal(200);
      const t = await call(a.url, 'POST', '/tools/dicom-echo', { AET: 'STORESCP', Host: '127.0.0.1', Port: storescp.port, Timeout: 2 });
      expect(t.status).to.equal(200);
      expect(t.json).to.deep.equal({});
    });

    it('an unknown modality is 404, a malformed body 400, a closed port or a silent node a 500 naming it', async () => {
      expectError(await call(a.url, 'POST', '/modalities/nope/echo', ''), 404, 'Accessing an inexistent item');
      expect((await call(a.url, 'POST', '/modalities/storescp/echo', '{bad')).status).to.equal(400);
      expect((await call(a.url, 'POST', '/modalities/storescp/echo', { Timeout: -1 })).status).to.equal(400);
      // Beyond what a timer holds (2^31 - 1 ms) is refused, not turned into an immediate timeout.
      expect((await call(a.url, 'POST', '/modalities/storescp/echo', { Timeout: 3000000 })).status).to.equal(400);
      // Our AE title towards the node must be one: 400, not a network error.
      for (const LocalAet of ['THIS_IS_WAY_TOO_LONG_AET', 'A\\B', '   ']) {
        const r = await call(a.url, 'POST', '/modalities/storescp/echo', { LocalAet });
        expect(r.status, LocalAet).to.equal(400);
        expect(r.json.Details).to.match(/LocalAet .* is not an AE title/);
      }
      expect((await call(a.url, 'POST', '/modalities/storescp/store', { Resources: [], LocalAet: 'A\\B' })).status).to.equal(400);
      expect((await call(a.url, 'POST', '/tools/dicom-echo', { AET: 'X', Host: '127.0.0.1' })).status).to.equal(400);
      const closed = await call(a.url, 'POST', '/modalities/closed/echo', '');
      expectError(closed, 500, 'Error in the network protocol');
      expect(closed.json.Details).to.match(/C-ECHO SCU to AET "NOBODY"/);
      const silent = await startSilentPeer();
      try {
        const r = await call(a.url, 'POST', '/tools/dicom-echo', { AET: 'SILENT', Host: '127.0.0.1', Port: silent.port, Timeout: 1 });
        expectError(r, 500, 'Error in the network protocol');
        expect(r.json.Details).to.match(/SILENT/);
      } finally {
        await silent.close();
      }
    });
  });

  describe('C-STORE', () => {
    it('stores one instance (raw ID body), a list, a study: bytes unchanged, answers the job content, logs /exports', async () => {
      clearReceived();
      const one = await call(a.url, 'POST', '/modalities/storescp/store', ids.instances[0]);
      expect(one.status, one.text).to.equal(200);
      expect(one.json).to.include({ Description: 'REST API', FailedInstancesCount: 0, InstancesCount: 1, LocalAet: 'PACSA', RemoteAet: 'STORESCP' });
      expect(received()).to.have.length(1);
      const got = readFileSync(join(storescp.dir, received()[0]!));
      expect(datasetBytes(got).equals(datasetBytes(files[0]!))).to.equal(true);
      clearReceived();
      const list = await call(a.url, 'POST', '/modalities/storescp/store', [ids.instances[1], ids.instances[2]]);
      expect(list.json).to.include({ InstancesCount: 2 });
      clearReceived();
      const byStudy = await call(a.url, 'POST', '/modalities/storescp/store', { Resources: [ids.study], Synchronous: true, LocalAet: 'OTHERAET' });
      expect(byStudy.json).to.include({ InstancesCount: 3, LocalAet: 'OTHERAET' });
      expect(byStudy.json.ParentResources).to.deep.equal([ids.study]);
      expect(received()).to.have.length(3);
      const exports = (await call(a.url, 'GET', '/exports')).json as unknown as { Exports: { ResourceType: string; RemoteModality: string; SOPInstanceUID: string }[] };
      expect(exports.Exports.length).to.be.at.least(6);
      expect(exports.Exports.every((e) => e.RemoteModality === 'STORESCP' && e.ResourceType === 'Instance')).to.equal(true);
    });

    it('asynchronously: answers {ID, Path}, the job succeeds with a patient\'s instances', async () => {
      clearReceived();
      const r = await call(a.url, 'POST', '/modalities/storescp/store', { Resources: [ids.patient], Synchronous: false, Priority: 3 });
      expect(r.json).to.have.keys(['ID', 'Path']);
      const id = r.json.ID as unknown as string;
      await waitUntil(async () => (await call(a.url, 'GET', `/jobs/${id}`)).json.State === 'Success', 'the store job');
      const job = (await call(a.url, 'GET', `/jobs/${id}`)).json as unknown as { Type: string; Priority: number; Content: Record<string, unknown> };
      expect(job.Type).to.equal('DicomModalityStore');
      expect(job.Priority).to.equal(3);
      expect(job.Content).to.include({ InstancesCount: 3, FailedInstancesCount: 0 });
      expect(received()).to.have.length(3);
    });

    it('refuses unknown resources (404) and malformed bodies (400) without a job; an unreachable node fails the job, with the reason', async () => {
      const jobsBefore = (await call(a.url, 'GET', '/jobs')).json.length;
      expectError(await call(a.url, 'POST', '/modalities/storescp/store', ['574945df-2796d56a-d4bd631c-c808942b-07fe98bf']), 404, 'Unknown resource');
      expectError(await call(a.url, 'POST', '/modalities/storescp/store', ['0000']), 400, 'Bad file format');
      expectError(await call(a.url, 'POST', '/modalities/storescp/store', 'not an ID'), 400, 'Bad file format');
      expect((await call(a.url, 'POST', '/modalities/storescp/store', { Resources: 3 })).status).to.equal(400);
      expect((await call(a.url, 'POST', '/modalities/storescp/store', { Resources: [ids.study], Synchronous: 'yes' })).status).to.equal(400);
      expect((await call(a.url, 'POST', '/modalities/storescp/store', { Resources: [ids.study], Timeout: 'x' })).status).to.equal(400);
      expect((await call(a.url, 'POST', '/modalities/storescp/store', '')).status).to.equal(400);
      expect((await call(a.url, 'GET', '/jobs')).json.length).to.equal(jobsBefore);
      const failed = await call(a.url, 'POST', '/modalities/closed/store', [ids.study]);
      expectError(failed, 500, 'Error in the network protocol');
      expect(failed.json.Details).to.match(/NOBODY/);
      const queued = (await call(a.url, 'POST', '/modalities/closed/store', { Resources: [ids.study], Synchronous: false })).json.ID as unknown as string;
      await waitUntil(async () => (await call(a.url, 'GET', `/jobs/${queued}`)).json.State === 'Failure', 'the failed job');
      const job = (await call(a.url, 'GET', `/jobs/${queued}`)).json as unknown as { ErrorCode: number; ErrorDetails: string };
      expect(job.ErrorCode).to.equal(9); // NetworkProtocol
      expect(job.ErrorDetails).to.match(/NOBODY/);
    });

    it('Permissive: an instance the node refuses (JPEG 2000 to storescp, no transcoding yet) fails the job, or is only counted', async function () {
      const j2kPath = '/usr/lib/python3/dist-packages/pydicom/data/test_files/JPEG2000.dcm';
      if (!existsSync(j2kPath)) this.skip(); // python3-pydicom is installed by .ci/run
      const j2k = (await call(a.url, 'POST', '/instances', readFileSync(j2kPath))).json.ID as unknown as string;
      try {
        const strict = await call(a.url, 'POST', '/modalities/storescp/store', [j2k, ids.instances[0]]);
        expectError(strict, 500, 'Error in the network protocol');
        expect(strict.json.Details).to.match(/1 instance\(s\) could not be sent to STORESCP/);
        const lenient = await call(a.url, 'POST', '/modalities/storescp/store', { Resources: [j2k, ids.instances[0]], Permissive: true });
        expect(lenient.status, lenient.text).to.equal(200);
        expect(lenient.json).to.include({ InstancesCount: 2, FailedInstancesCount: 1 });
      } finally {
        await call(a.url, 'DELETE', `/instances/${j2k}`);
      }
    });

    it('store-straight sends the body itself, without storing it here', async () => {
      clearReceived();
      const file = makeInstance({ patientId: 'STRAIGHT' });
      const sop = readPart10(file).dataset.text(Tags.SOPInstanceUID);
      const r = await call(a.url, 'POST', '/modalities/storescp/store-straight', file);
      expect(r.status, r.text).to.equal(200);
      expect(r.json).to.include({ SOPInstanceUID: sop });
      expect(received()).to.have.length(1);
      expect((await call(a.url, 'POST', '/tools/lookup', sop)).json).to.deep.equal([]);
      expect((await call(a.url, 'POST', '/modalities/storescp/store-straight', 'not dicom')).status).to.equal(400);
      // A file over 1 MB goes too (MaximumHttpBodySize 0 = no limit).
      const big = makeInstance({ patientId: 'STRAIGHT', pixelBytes: 3 << 20 });
      const bigAnswer = await call(a.url, 'POST', '/modalities/storescp/store-straight', big);
      expect(bigAnswer.status, bigAnswer.text).to.equal(200);
      expect(received()).to.have.length(2);
    });
  });

  describe('C-MOVE and C-GET of given resources, from a second pacsnode', () => {
    let b: Node;
    const bStudy = generateUid();
    before(async () => {
      b = await startNode('PACSB', { DicomModalities: { a: ['PACSA', '127.0.0.1', a.dicomPort], storescp: ['STORESCP', '127.0.0.1', storescp.port] } });
      for (let n = 1; n <= 4; n++) await call(b.url, 'POST', '/instances', makeInstance({ studyInstanceUid: bStudy, patientId: 'FROMB', instanceNumber: n }));
      await call(a.url, 'PUT', '/modalities/b', ['PACSB', '127.0.0.1', b.dicomPort]);
    });
    after(async () => {
      await call(a.url, 'DELETE', '/modalities/b');
      await b?.close();
    });

    it('/move brings a study here (TargetAet defaults to ours), or sends it to a third party', async () => {
      const r = await call(a.url, 'POST', '/modalities/b/move', { Level: 'Study', Resources: [{ StudyInstanceUID: bStudy }] });
      expect(r.status, r.text).to.equal(200);
      expect(r.json).to.include({ RemoteAet: 'PACSB', TargetAet: 'PACSA', LocalAet: 'PACSA' });
      expect((await call(a.url, 'POST', '/tools/lookup', bStudy)).json).to.have.length(1);
      const study = ((await call(a.url, 'POST', '/tools/lookup', bStudy)).json as unknown as { ID: string }[])[0]!.ID;
      expect((await call(a.url, 'GET', `/studies/${study}/instances`)).json).to.have.length(4);
      clearReceived();
      const third = await call(a.url, 'POST', '/modalities/b/move', { Level: 'STUDY', Resources: [{ '0020,000d': bStudy }], TargetAet: 'STORESCP' });
      expect(third.status, third.text).to.equal(200);
      expect(received()).to.have.length(4);
    });

    it('/get retrieves a study with C-GET; an unknown move destination fails with the peer\'s status', async () => {
      await call(a.url, 'DELETE', `/studies/${((await call(a.url, 'POST', '/tools/lookup', bStudy)).json as unknown as { ID: string }[])[0]!.ID}`);
      const r = await call(a.url, 'POST', '/modalities/b/get', { Level: 'Study', Resources: [{ StudyInstanceUID: bStudy }] });
      expect(r.status, r.text).to.equal(200);
      expect(r.json).to.include({ RemoteAet: 'PACSB' });
      const study = ((await call(a.url, 'POST', '/tools/lookup', bStudy)).json as unknown as { ID: string }[])[0]!.ID;
      expect((await call(a.url, 'GET', `/studies/${study}/instances`)).json).to.have.length(4);
      const bad = await call(a.url, 'POST', '/modalities/b/move', { Level: 'Study', Resources: [{ StudyInstanceUID: bStudy }], TargetAet: 'UNKNOWNAET' });
      expectError(bad, 500, 'Error in the network protocol');
      expect(bad.json.Details).to.match(/0xA801/i);
    });

    it('malformed /move and /get bodies are 400', async () => {
      for (const body of [{}, { Level: 'Study' }, { Level: 'Nope', Resources: [{}] }, { Level: 'Study', Resources: ['x'] }, { Level: 'Study', Resources: [{ Nope: '1' }] }, { Level: 'Study', Resources: [{ StudyInstanceUID: 1 }] }, { Level: 'Study', Resources: [{}], TargetAet: 'A\\B' }]) {
        expect((await call(a.url, 'POST', '/modalities/b/move', body)).status, JSON.stringify(body)).to.equal(400);
      }
      expect((await call(a.url, 'POST', '/modalities/b/get', '[1]')).status).to.equal(400);
    });
  });

  describe('UseDicomTls', () => {
    let pki: string;
    let secure: Node;
    let tlsClient: Node;
    before(async function () {
      if (!HAS_OPENSSL) this.skip();
      pki = mkdtempSync(join(tmpdir(), 'hc-modalities-pki-'));
      makePki(pki);
      const tls = (leaf: string) => ({
        DicomTlsCertificate: join(pki, `${leaf}.pem`),
        DicomTlsPrivateKey: join(pki, `${leaf}.key`),
        DicomTlsTrustedCertificates: join(pki, 'ca.pem'),
      });
      secure = await startNode('SECURE', { DicomTlsEnabled: true, ...tls('server'), DicomAlwaysAllowStore: true });
      // Our side: the client credentials (read on first use, for modalities with UseDicomTls).
      tlsClient = await startNode('PACSTLS', { ...tls('client'), DicomModalities: { secure: { AET: 'SECURE', Host: '127.0.0.1', Port: secure.dicomPort, UseDicomTls: true }, plain: ['SECURE', '127.0.0.1', secure.dicomPort] } });
    });
    after(async () => {
      await tlsClient?.close();
      await secure?.close();
      if (pki) rmSync(pki, { recursive: true, force: true });
    });

    it('echo and store go over DICOM TLS to a modality with UseDicomTls; without it the TLS-only node is unreachable', async () => {
      expect((await call(tlsClient.url, 'POST', '/modalities/secure/echo', '')).json).to.deep.equal({});
      const id = (await call(tlsClient.url, 'POST', '/instances', makeInstance({ patientId: 'TLS' }))).json.ID as unknown as string;
      const r = await call(tlsClient.url, 'POST', '/modalities/secure/store', [id]);
      expect(r.status, r.text).to.equal(200);
      expect(r.json).to.include({ InstancesCount: 1, FailedInstancesCount: 0 });
      expect((await call(secure.url, 'GET', `/instances/${id}`)).status).to.equal(200);
      const plain = await call(tlsClient.url, 'POST', '/modalities/plain/echo', { Timeout: 2 });
      expectError(plain, 500, 'Error in the network protocol');
    });
  });
});
